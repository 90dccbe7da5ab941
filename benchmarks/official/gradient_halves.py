"""Mean gradients over random draws, kept as two halves so that their gap measures the draws' noise;
both venvs (torch only). dump_gradients.py (official dropout), compare_gradients.py (plugin dropout) and
draw_gradients.py (training draws) share them:

    r = |mean_1 - mean_2|² / ((|a - b|²_1 + |a - b|²_2) / 4)

for two kinds of draws 1 and 2, a and b the means over a kind's even and odd draws: about 1 when the
two kinds give the same gradient in distribution.
"""


def half_means(step, count: int):
    """(per-draw losses, [mean gradient over the even draws, over the odd ones]) of ``step(k)`` ->
    (loss, {name: gradient}) for k < ``count`` (even)."""
    losses, halves = [], [{}, {}]
    for k in range(count):
        loss, gradients = step(k)
        losses.append(float(loss))
        for name, gradient in gradients.items():
            halves[k % 2][name] = halves[k % 2].get(name, 0) + gradient / (count // 2)
    return losses, halves


def half_noise(side: list, names) -> float:
    """|a - b|² of one kind over the parameters ``names``."""
    return sum(float((side[0][n] - side[1][n]).pow(2).sum()) for n in names)


def noise_ratio(first: list, second: list, names) -> float:
    """r over the parameters ``names`` together."""
    gap = sum(float(((second[0][n] + second[1][n] - first[0][n] - first[1][n]) / 2).pow(2).sum()) for n in names)
    return gap / ((half_noise(first, names) + half_noise(second, names)) / 4)


def noisy_names(side: list) -> list:
    """The parameters whose gradient the draws move (not those of terms without noise)."""
    return [name for name in side[0] if half_noise(side, [name]) > 0]
