// The entry point of the batched LSTM step kernels: one invocation per hidden unit j and block of 4 batch items
// b0 … b0 + 3 (grid x = ⌈H / 32⌉, y = ⌈B / 4⌉), calling the includer's `fn lstm_main(j: u32, b0: u32)`.

@compute @workgroup_size(32, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= p.H) { return; }
  lstm_main(gid.x, gid.y * 4u);
}
