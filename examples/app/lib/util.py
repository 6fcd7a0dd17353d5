# Small helpers shared by the app.


def clamp(value, lo, hi):
    return lo if value < lo else hi if value > hi else value


def moving_average(values, window):
    out = []
    total = 0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
