/// Layer-like ops (convolution, pooling, normalisation, attention, …) as static functions,
/// named after their PyTorch counterparts so ported networks read alike.
public enum NN {}
