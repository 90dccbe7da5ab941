"""The denoiser network's embedding space options (no fairseq)."""
import pytest
import torch

from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig
from diffuseq_fairseq.network_records import TrainingNoise
from diffuseq_fairseq.step_sampler import UniformSampler

SMALL = dict(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2, encoder_ffn_embed_dim=64,
             latent_dim=16, num_timesteps=50)


@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_embed_norm_gives_unit_rows_divided_by_the_noise_factor(factor):
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, embed_norm=True, noise_factor=factor), 30, 1)
    rows = net.word_embeddings()
    assert torch.allclose(rows.mean(-1), torch.zeros(30), atol=1e-5)
    assert torch.allclose(rows.pow(2).mean(-1).sqrt(), torch.full((30,), 1 / factor), atol=1e-3)
    terms = net.training_terms(torch.tensor([[5, 6, 2]]), torch.tensor([3]), torch.tensor([[7, 8, 2, 1]]),
                               torch.tensor([10]))
    assert all(torch.isfinite(v).all() for v in terms.values())


def test_noise_factor_needs_embed_norm_and_must_be_positive():
    with pytest.raises(ValueError, match="needs --embed-norm"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, noise_factor=2.0), 30, 1)
    with pytest.raises(ValueError, match="positive"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, embed_norm=True, noise_factor=0.0), 30, 1)


@pytest.mark.parametrize("layout", ["continue", "restart"])
@pytest.mark.parametrize("once", [False, True])
def test_target_position_ids_follow_the_source_or_restart_at_zero(layout, once):
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, target_positions=layout, encode_source_once=once), 30, 1).eval()
    seen = []
    net.embed_positions.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    src, lengths = torch.tensor([[5, 6, 7, 2], [8, 2, 1, 1]]), torch.tensor([4, 2])
    source = net.encode_source(src, lengths)
    out = net.denoise(torch.randn(2, 3, 16), torch.tensor([5, 5]), source)
    assert out.shape == (2, 3, 16)
    (target_ids,) = [ids for ids in seen if ids.shape == (2, 3)]  # the source's call is [2, 4]
    expected = torch.arange(3).expand(2, 3) if layout == "restart" else lengths[:, None] + torch.arange(3)
    assert torch.equal(target_ids, expected)
    assert (net.embed_segment is not None) == (layout == "restart")


def test_unknown_target_positions_is_a_clear_error():
    with pytest.raises(ValueError, match="--target-positions"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, target_positions="shifted"), 30, 1)


def test_skipping_the_rounding_term_leaves_the_other_terms_unchanged():
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, embed_norm=True, dropout=0.0, attention_dropout=0.0), 30, 1)
    batch = (torch.tensor([[5, 6, 2], [9, 2, 1]]), torch.tensor([3, 2]), torch.tensor([[7, 8, 2, 1], [4, 2, 1, 1]]),
             torch.tensor([10, 40]))
    torch.manual_seed(0)
    full = net.training_terms(*batch)
    torch.manual_seed(0)
    skipped = net.training_terms(*batch, rounding_term=False)
    assert torch.equal(skipped["rounding_nll"], torch.zeros(2))
    for key in ("mse", "tT", "anchor_nll"):
        assert torch.allclose(full[key], skipped[key]), key
    # With the default latent size and --embed-norm the term is exactly 0 in float32: skipping it
    # changes nothing but the cost (the recipe's --rounding-loss-weight 0).
    wide = DiffuSeqNetwork(NetworkConfig(**dict(SMALL, latent_dim=128), embed_norm=True), 500, 1)
    torch.manual_seed(0)
    assert wide.training_terms(*batch)["rounding_nll"].max() < 1e-6


def test_an_untrained_anchor_term_is_logged_without_a_gradient_and_changes_no_gradient():
    """The paper's loss only logs the anchor CE: computing it without gradient must leave its value and
    every parameter's gradient of the trained terms exactly as they were."""
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, dropout=0.0, attention_dropout=0.0), 30, 1)
    batch = (torch.tensor([[5, 6, 2], [9, 2, 1]]), torch.tensor([3, 2]), torch.tensor([[7, 8, 2, 1], [4, 2, 1, 1]]),
             torch.tensor([10, 40]))

    def step(anchor_trained):
        net.zero_grad()
        torch.manual_seed(0)
        terms = net.training_terms(*batch, loss_positions="all", anchor_trained=anchor_trained)
        (terms["mse"] + terms["rounding_nll"] + terms["tT"] + 0.0 * terms["anchor_loss"]).sum().backward()
        return terms, {name: p.grad.clone() for name, p in net.named_parameters()}

    trained, trained_grads = step(True)
    logged, logged_grads = step(False)
    assert trained["anchor_nll"].requires_grad and not logged["anchor_nll"].requires_grad
    assert not logged["anchor_loss"].requires_grad and logged["mse"].requires_grad
    assert torch.equal(trained["anchor_nll"], logged["anchor_nll"])
    assert all(torch.equal(trained_grads[name], logged_grads[name]) for name in trained_grads)


def test_clipping_shows_steps_below_the_first_trained_one_as_that_step():
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, min_timestep_fraction=0.4), 30, 1).eval()
    assert net.first_train_step == 20
    source = net.encode_source(torch.tensor([[5, 6, 2]]), torch.tensor([3]))
    x_t = torch.randn(1, 4, 16)
    at_first = net.denoise(x_t, torch.tensor([20]), source)
    assert torch.equal(net.denoise(x_t, torch.tensor([3]), source), at_first)
    assert not torch.allclose(net.denoise(x_t, torch.tensor([35]), source), at_first)
    assert net.importance_sampler(0.001).first_step == 20
    with pytest.raises(ValueError, match="--min-timestep-fraction"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, min_timestep_fraction=1.0), 30, 1)


def test_label_smoothing_smooths_the_anchor_loss_and_logs_the_plain_nll():
    import torch.nn.functional as F

    net = DiffuSeqNetwork(NetworkConfig(**SMALL, dropout=0.0, attention_dropout=0.0), 30, 1).eval()
    batch = (torch.tensor([[5, 6, 2], [9, 2, 1]]), torch.tensor([3, 2]), torch.tensor([[7, 8, 2, 1], [4, 2, 1, 1]]),
             torch.tensor([10, 40]))
    torch.manual_seed(0)
    plain = net.training_terms(*batch)
    assert torch.equal(plain["anchor_loss"], plain["anchor_nll"])
    scored, token_losses = [], net.token_losses
    # the anchor's x̂0 is the last one scored
    net.token_losses = lambda x, tokens, smoothing=0.0: scored.append(x) or token_losses(x, tokens, smoothing)
    torch.manual_seed(0)
    smoothed = net.training_terms(*batch, label_smoothing=0.1)
    assert torch.allclose(smoothed["anchor_nll"], plain["anchor_nll"])
    expected = F.cross_entropy(net.logits(scored[-1]).flatten(0, 1), batch[2].flatten(), reduction="none",
                               label_smoothing=0.1)
    assert torch.allclose(smoothed["anchor_loss"], expected.view(2, 4).mean(1), atol=1e-6)
    assert (smoothed["anchor_loss"] != smoothed["anchor_nll"]).all()


def test_a_checkpoint_with_integer_sampler_counts_still_loads():
    """Older checkpoints saved the fill counts as int64; the buffer is float now (fairseq's EMA needs it)."""
    net = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1)
    steps = net.cfg.num_timesteps
    state = net.state_dict()
    state["timestep_loss_count"] = torch.arange(steps)
    net.load_state_dict(state)
    assert net.timestep_loss_count.dtype == torch.float32 and net.timestep_loss_count.tolist() == list(range(steps))


def test_glancing_gives_a_share_of_as_many_gold_words_as_the_first_pass_got_wrong(monkeypatch):
    import torch.nn.functional as F

    net = DiffuSeqNetwork(NetworkConfig(**SMALL, glance_rate=0.5), 30, 1)
    target = torch.tensor([[7, 8, 2, 1, 1], [4, 2, 1, 1, 1]])
    guess = torch.tensor([[7, 9, 9, 9, 1], [4, 2, 1, 1, 1]])  # the first row gets three words wrong, the second none
    monkeypatch.setattr(net, "denoise", lambda x_t, t, source, target_mask=None: torch.zeros(2, 5, 16))
    monkeypatch.setattr(net, "logits", lambda x: F.one_hot(guess, 30).float())
    z0, x_t = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    given_x, revealed = net.glance(x_t, torch.tensor([40, 40]), None, target, z0)
    assert revealed.sum(1).tolist() == [2, 0]  # ⌈0.5 · 3⌉ and ⌈0.5 · 0⌉
    assert torch.equal(given_x[revealed], z0[revealed]) and torch.equal(given_x[~revealed], x_t[~revealed])
    # Within a row's own canvas only: its wrong words and its positions, the lowest draws first.
    canvas = torch.tensor([[True, True, True, False, False], [True] * 5])
    uniform = torch.tensor([[0.9, 0.1, 0.5, 0.0, 0.0], [0.5] * 5])
    _, revealed = net.glance(x_t, torch.tensor([40, 40]), None, target, z0, target_mask=canvas, uniform=uniform)
    assert revealed.tolist()[0] == [False, True, False, False, False] and not revealed[1].any()  # ⌈0.5 · 2⌉


def test_glancing_trains_with_given_words_and_decodes_without():
    with pytest.raises(ValueError, match="--glance-rate"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, glance_rate=1.5), 30, 1)
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, glance_rate=0.5), 30, 1)
    terms = net.training_terms(torch.tensor([[5, 6, 2]]), torch.tensor([3]), torch.tensor([[7, 8, 2, 1]]),
                               torch.tensor([10]))
    assert all(torch.isfinite(v).all() for v in terms.values())
    source = net.encode_source(torch.tensor([[5, 6, 2]]), torch.tensor([3]))
    assert net.denoise(torch.randn(1, 4, 16), torch.tensor([5]), source).shape == (1, 4, 16)  # as the generator calls it
    plain = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1)
    assert plain.embed_revealed is None
    with pytest.raises(ValueError, match="--glance-rate"):
        plain.denoise(torch.randn(1, 4, 16), torch.tensor([5]), source, revealed=torch.ones(1, 4, dtype=torch.bool))


def test_glancing_scores_only_the_words_not_given(monkeypatch):
    import torch.nn.functional as F

    net = DiffuSeqNetwork(NetworkConfig(**SMALL, glance_rate=0.5, dropout=0.0, attention_dropout=0.0), 30, 1)
    given = torch.tensor([[True, False, True, True]])
    monkeypatch.setattr(net, "glance", lambda x_t, t, source, target, z0, target_mask, uniform: (x_t, given))
    scored, token_losses = [], net.token_losses
    monkeypatch.setattr(net, "token_losses",  # the anchor's x̂0: the last one scored
                        lambda x, tokens, smoothing=0.0: scored.append(x) or token_losses(x, tokens, smoothing))
    target = torch.tensor([[7, 8, 2, 1]])
    terms = net.training_terms(torch.tensor([[5, 6, 2]]), torch.tensor([3]), target, torch.tensor([10]),
                               rounding_term=False)
    logits = net.logits(scored[-1])
    assert torch.allclose(terms["anchor_nll"], F.cross_entropy(logits[0, 1:2], target[0, 1:2]).view(1))


def _paired_batch():
    return (torch.tensor([[5, 6, 2], [9, 2, 1]]), torch.tensor([3, 2]), torch.tensor([[7, 8, 2, 1], [4, 2, 1, 1]]),
            torch.tensor([10, 40]))


def test_given_noise_replays_the_draws_in_their_order():
    """target z0, source z0, then q_sample's ε: giving those tensors reproduces a drawn step exactly."""
    net = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1).eval()
    src, lengths, target, t = _paired_batch()
    torch.manual_seed(0)
    drawn = net.training_terms(src, lengths, target, t, loss_positions="all")
    torch.manual_seed(0)
    target_z0, source_z0, diffusion = torch.randn(2, 4, 16), torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    given = net.training_terms(src, lengths, target, t, loss_positions="all",
                               noise=TrainingNoise(source_z0=source_z0, target_z0=target_z0, diffusion=diffusion))
    for key in drawn:
        assert torch.equal(drawn[key], given[key]), key


def test_corruption_with_given_noise_is_the_forward_process():
    net = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1)
    src, lengths, target, t = _paired_batch()
    noise = TrainingNoise(torch.randn(2, 3, 16), torch.randn(2, 4, 16), torch.randn(2, 4, 16))
    corruption = net.corrupt(src, lengths, target, t, noise)
    std = net.diffusion.z0_noise_std
    abar = net.diffusion.alphas_cumprod[t].float().view(-1, 1, 1)
    assert torch.allclose(corruption.source.embeddings, net.embed(src) + std * noise.source_z0)
    assert torch.allclose(corruption.z0, net.embed(target) + std * noise.target_z0)
    assert torch.allclose(corruption.x_t, abar.sqrt() * corruption.z0 + (1 - abar).sqrt() * noise.diffusion, atol=1e-6)
    assert corruption.revealed is None


def test_loss_terms_of_a_perfect_prediction_are_the_rounding_and_prior_terms_alone():
    net = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1)
    src, lengths, target, t = _paired_batch()
    corruption = net.corrupt(src, lengths, target, t)
    perfect = (corruption.source.embeddings, corruption.z0)
    terms = net.loss_terms(corruption, perfect, src, target, t, loss_positions="all")
    assert torch.equal(terms["mse"], torch.zeros(2))
    assert (terms["rounding_nll"] > 0).all() and (terms["tT"] > 0).all()
    with pytest.raises(ValueError, match="loss positions"):
        net.loss_terms(corruption, perfect, src, target, t, loss_positions="both")


@pytest.mark.parametrize("once", [False, True])
def test_target_mask_makes_a_rows_prediction_independent_of_positions_beyond_its_canvas(once):
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, encode_source_once=once), 30, 1).eval()
    src, lengths = torch.tensor([[5, 6, 7, 2], [8, 2, 1, 1]]), torch.tensor([4, 2])
    source = net.encode_source(src, lengths)
    x_t, t = torch.randn(2, 6, 16), torch.tensor([5, 30])
    canvas = torch.tensor([6, 3])  # the second row's own canvas ends after 3 positions
    target_mask = torch.arange(6) < canvas[:, None]
    batched = net.denoise(x_t, t, source, target_mask=target_mask)
    alone = net.denoise(x_t[1:, :3], t[1:], source.select(torch.tensor([1])))
    assert torch.allclose(batched[1, :3], alone[0], atol=1e-5)
    changed = x_t.clone()
    changed[1, 3:] = torch.randn(3, 16)  # what lies beyond the canvas is not seen
    assert torch.equal(net.denoise(changed, t, source, target_mask=target_mask)[1, :3], batched[1, :3])
    assert not torch.allclose(net.denoise(changed, t, source)[1, :3], batched[1, :3])  # without the mask it is
    full = torch.ones(2, 6, dtype=torch.bool)
    assert torch.equal(net.denoise(x_t, t, source, target_mask=full), net.denoise(x_t, t, source))


ROW_OPTIONS = [
    {}, {"self_condition": True}, {"glance_rate": 0.5}, {"learned_mean_embed": True, "absorb_rate": 0.5},
    {"encode_source_once": True, "target_positions": "restart"},
]


@pytest.mark.parametrize("options", ROW_OPTIONS, ids=lambda o: "-".join(o) or "default")
@pytest.mark.parametrize("loss_positions", ["target", "all"])
def test_a_rows_seeded_loss_is_the_same_alone_and_in_a_batch(options, loss_positions):
    """Issue #31: with seeded draws and each row's own canvas, a sentence's loss terms do not depend on
    the other rows (their lengths, their canvas, their draws)."""
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, **options), 30, 1).eval()
    sampler = UniformSampler(net.cfg.num_timesteps)
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 2, 1, 1, 1], [4, 5, 2, 1, 1]])
    src_lengths = torch.tensor([5, 2, 3])
    target = torch.tensor([[7, 8, 9, 10, 11, 2, 1], [4, 2, 1, 1, 1, 1, 1], [6, 6, 2, 1, 1, 1, 1]])
    canvas = torch.tensor([7, 3, 4])
    seeds = [11, 12, 13]

    def terms(rows):
        width = int(canvas[rows].max())
        src_width = int(src_lengths[rows].max())
        row_seeds = [seeds[i] for i in rows]
        t, noise = net.seeded_draws(row_seeds, sampler, src_lengths[rows], canvas[rows], src_width, width)
        mask = torch.arange(width) < canvas[rows, None]
        return net.training_terms(src[rows, :src_width], src_lengths[rows], target[rows, :width], t,
                                  loss_positions=loss_positions, noise=noise, target_mask=mask)

    batched = terms([0, 1, 2])
    for row in range(3):
        alone = terms([row])
        for key, value in alone.items():
            assert torch.allclose(batched[key][row], value[0], rtol=1e-5, atol=1e-6), (row, key)


def test_seeded_draws_are_the_rows_own_and_steps_come_from_the_sampler():
    net = DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1)
    sampler = UniformSampler(net.cfg.num_timesteps, first_step=20)
    t, noise = net.seeded_draws([3, 4], sampler, torch.tensor([3, 1]), torch.tensor([2, 4]), 3, 4)
    t_alone, alone = net.seeded_draws([4], sampler, torch.tensor([1]), torch.tensor([4]), 1, 4)
    assert t[1] == t_alone[0] and ((20 <= t) & (t < 50)).all()
    for batched, single in zip(noise, alone):
        assert torch.equal(batched[1, :single.size(1)] if batched.dim() > 1 else batched[1], single[0])
    assert noise.source_z0.shape == (2, 3, 16) and noise.target_z0.shape == (2, 4, 16)
    assert not noise.target_z0[0, 2:].any() and not noise.source_z0[1, 1:].any()  # beyond a row: zeros
    _, other_seed = net.seeded_draws([5], sampler, torch.tensor([1]), torch.tensor([4]), 1, 4)
    assert not torch.equal(other_seed.target_z0, alone.target_z0)



def test_time_embedding_size_is_the_latent_size_unless_given():
    """The official hidden_t_dim may differ from hidden_dim; converting such a model needs it."""
    assert DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1).time_embed[0].weight.shape == (64, 16)
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, time_embed_dim=6), 30, 1).eval()
    assert net.time_embed[0].weight.shape == (24, 6) and net.time_embed[2].weight.shape == (32, 24)
    source = net.encode_source(torch.tensor([[5, 6, 2]]), torch.tensor([3]))
    assert net.denoise(torch.randn(1, 4, 16), torch.tensor([5]), source).shape == (1, 4, 16)


def test_identity_projections_feed_the_stack_the_embeddings_themselves():
    """As the official TransformerNetModel when hidden_dim equals the stack's size."""
    sizes = dict(SMALL, latent_dim=32)
    net = DiffuSeqNetwork(NetworkConfig(**sizes, identity_projections=True), 30, 1).eval()
    assert isinstance(net.input_up_proj, torch.nn.Identity) and isinstance(net.output_down_proj, torch.nn.Identity)
    source = net.encode_source(torch.tensor([[5, 6, 2]]), torch.tensor([3]))
    x_t, t = torch.randn(1, 4, 32), torch.tensor([5])
    seen = []
    net.encoder.register_forward_hook(lambda module, inputs, output: seen.append(output[0]))
    assert torch.equal(net.denoise(x_t, t, source), seen[-1][:, 3:])  # the stack's own states, unprojected
    for wrong in (dict(SMALL, identity_projections=True), dict(sizes, identity_projections=True, self_condition=True)):
        with pytest.raises(ValueError, match="--identity-projections needs"):
            DiffuSeqNetwork(NetworkConfig(**wrong), 30, 1)


def test_the_output_bias_starts_at_zero_or_as_the_official_linear_layer():
    """Default: 0. --uniform-output-bias: U(±1/√latent), as the official nn.Linear lm_head (issue #26)."""
    assert torch.count_nonzero(DiffuSeqNetwork(NetworkConfig(**SMALL), 30, 1).output_bias) == 0
    bias = DiffuSeqNetwork(NetworkConfig(**SMALL, uniform_output_bias=True), 30, 1).output_bias
    bound = 1 / SMALL["latent_dim"] ** 0.5
    assert torch.count_nonzero(bias) == 30 and bias.abs().max() <= bound and bias.std() > bound / 4
