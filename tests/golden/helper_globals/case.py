# %% tags=["setup"]
import math


def scaled(value):
    """Reads the global `factor`: nb2pipe passes it in."""
    return math.floor(value * factor)

# %% tags=["parameters"]
factor = 3
label = "run-1"

# %% tags=["task:make"]
offset = 5


def shift(values):
    # a helper defined in a task and used by a later one: it moves to helpers.py
    return [v + offset for v in values]


numbers = shift([1, 2, 3])

# %% tags=["task:use"]
result = [scaled(n) for n in shift(numbers)]
tagged = f"{label}:{len(result)}"
