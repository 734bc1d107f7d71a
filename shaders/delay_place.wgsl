// Writes one decoding step's tokens into the code sequence, through the delay pattern:
// seq[r, t] = forced[r, t] >= 0 ? forced[r, t] : sampled[r], for each row r = (batch, codebook).
// The sampled tokens never leave the GPU; the next step reads its input from `seq`.

struct P { rows: u32, length: u32, t: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> forced: array<i32>;
@group(0) @binding(2) var<storage, read> sampled: array<i32>;
@group(0) @binding(3) var<storage, read_write> seq: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  let i = r * p.length + p.t;
  let f = forced[i];
  seq[i] = select(sampled[r], f, f >= 0);
}
