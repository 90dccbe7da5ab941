"""``fairseq-generate ... --task diffuseq --help`` lists the task's, model's and criterion's options.

fairseq 0.12 parses the command line twice: first to learn the task, model and criterion, then with
their options added. ``-h`` is answered by the first parse, so stock ``--help`` never shows a task's
options (``--sampler``, ``--rounding``, ...). The plugin is imported before either parse (fairseq
imports ``--user-dir`` while building its parser), so it can answer ``--help`` after the options of
everything named on the command line have been added, with their choices.
"""
import functools
import sys

HELP_FLAGS = ("-h", "--help")


def install() -> None:
    from fairseq import options

    original = options.parse_args_and_arch
    if getattr(original, "_diffuseq_help", False):
        return

    @functools.wraps(original)
    def parse_args_and_arch(parser, input_args=None, parse_known=False, suppress_defaults=False,
                            modify_parser=None):
        given = sys.argv[1:] if input_args is None else list(input_args)
        if not any(flag in given for flag in HELP_FLAGS):
            return original(parser, input_args, parse_known, suppress_defaults, modify_parser)
        without_help = [arg for arg in given if arg not in HELP_FLAGS]
        try:  # adds the options of the named task, model and criterion to ``parser``
            original(parser, without_help, True, suppress_defaults, modify_parser)
        except SystemExit:  # e.g. no data directory given: fairseq's own help, as without the plugin
            return original(parser, input_args, parse_known, suppress_defaults, modify_parser)
        parser.print_help()
        sys.exit(0)

    parse_args_and_arch._diffuseq_help = True
    options.parse_args_and_arch = parse_args_and_arch
