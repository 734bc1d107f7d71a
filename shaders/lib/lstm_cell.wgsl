// Shared by the LSTM step kernels: the gate activations, and (lstm.wgsl, lstm_backward.wgsl) the entry point.

fn sigmoid_(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
// tanh through exp overflows to inf/inf (NaN) on some drivers for large |x|; tanh(±15) is ±1 in f32 anyway
fn tanh_(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
