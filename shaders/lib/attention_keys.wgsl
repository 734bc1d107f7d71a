// Key-side helpers shared by attention.wgsl and attention_bwd_dq.wgsl (one query row per invocation, keys taken
// in blocks of 4). They read the includer's uniforms (causal, Tq, Tk, hasMask, maskStride, hasBias, scale), its
// Bias binding, and the key mask through the includer's `fn mask_word(i: u32) -> u32` (word i of the [B, stride]
// mask: the forward binds the mask, the backward reads it packed with other inputs).

// Keys query i may see: all Tk, or with a causal mask j ≤ i + (Tk − Tq) (queries are the last Tq positions).
fn key_end(i: u32) -> u32 {
  if (p.causal == 0u) { return p.Tk; }
  return u32(clamp(i32(i) + i32(p.Tk) - i32(p.Tq) + 1, 0, i32(p.Tk)));
}

// Lanes of the key block jj (loads clamped to jc) that lie before `end` and that batch b's key mask keeps (f32
// or i32 masks: any bits but the sign bit mean keep).
fn keys_valid(jj: vec4<u32>, jc: vec4<u32>, end: u32, b: u32) -> vec4<bool> {
  var valid = jj < vec4<u32>(end);
  if (p.hasMask != 0u) {
    let mb = b * p.maskStride;
    let keep = vec4<u32>(mask_word(mb + jc.x), mask_word(mb + jc.y), mask_word(mb + jc.z), mask_word(mb + jc.w)) & vec4<u32>(0x7fffffffu);
    valid = valid & (keep != vec4<u32>(0u));
  }
  return valid;
}

// A key block's scores: the dot products scaled, plus the additive bias of row `biasRow` when there is one.
fn block_scores(dots: vec4<f32>, biasRow: u32, jc: vec4<u32>) -> vec4<f32> {
  var sc = dots * p.scale;
  if (p.hasBias != 0u) {
    sc += vec4<f32>(Bias[biasRow + jc.x], Bias[biasRow + jc.y], Bias[biasRow + jc.z], Bias[biasRow + jc.w]);
  }
  return sc;
}
