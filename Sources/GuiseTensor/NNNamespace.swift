/// Layer-like ops (linear, norms, attention, convolution, losses) live here as static functions,
/// e.g. `NN.linear(x, weight: w, bias: b)`. Each op file extends this namespace.
public enum NN {}
