import{a}from"./chunk-K2WOVZVU.js";import"./chunk-KVMUXFPB.js";export{a as createOpusDecoder};
//# sourceMappingURL=core-L45YOEJP.js.map
