// The entry point every row kernel shares: one workgroup of 64 invocations per row (rows spread over a 2-D
// grid of workgroups, `rt.grid(rows)`), calling the including shader's
// `fn row_main(row: u32, base: u32, C: u32, t: u32)` for rows < p.rows, with base = row · p.C the row's first
// element and t the invocation's index in the workgroup. Include it after lib/row_reduce*.wgsl.

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  row_main(row, row * p.C, p.C, t);
}
