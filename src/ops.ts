// The op library in one import: every differentiable op sits in its kernel's file with its backward beside it.

export * from './kernels/elementwise.js';
export * from './kernels/matmul.js';
export * from './kernels/gemv.js';
export * from './kernels/packed.js';
export * from './kernels/shape.js';
export * from './kernels/conv.js';
export * from './kernels/lstm.js';
export * from './kernels/norm.js';
export * from './kernels/group-norm.js';
export * from './kernels/conv2d.js';
export * from './kernels/glu.js';
export * from './kernels/stft.js';
export * from './kernels/softmax.js';
export * from './kernels/reduce.js';
export * from './kernels/loss.js';
export * from './kernels/attention.js';
export * from './kernels/embedding.js';
export * from './kernels/rvq.js';
export * from './kernels/adam.js';
export * from './kernels/clip.js';
export * from './kernels/sample.js';

export * from './kernels/codes.js';
