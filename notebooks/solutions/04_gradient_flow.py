# Solutions of the checked exercises of notebooks/04_gradient_flow.ipynb
# (`python notebooks/run_notebooks.py --solutions 04`).

# %% exercise: one_layer_gain
answer = 1 / 2 * 3 * 3 * 16 * (1 / (3 * 3 * 3 * 16))  # ½ · fan_out · σ², σ² = 1/(3 fan_in) = 1/6

# %% exercise: he_std
def he_std(shape, mode):
    receptive = int(np.prod(shape[2:]))  # KH*KW for a conv, 1 for a linear layer
    fan = (shape[1] if mode == "fan_in" else shape[0]) * receptive
    return float(np.sqrt(2.0 / fan))
