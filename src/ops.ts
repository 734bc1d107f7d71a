// The op library in one import: every differentiable op sits in its kernel's file with its backward beside it.

import { setGradAdder } from './train/tape.js';
import { add } from './kernels/elementwise.js';

export * from './kernels/elementwise.js';
export * from './kernels/matmul.js';
export * from './kernels/shape.js';

setGradAdder(add);
