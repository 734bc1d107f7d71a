import"./chunk-KVMUXFPB.js";var o=()=>{throw new Error("@audio/decode-ape is not installed, so this audio format cannot be decoded in this build")},e=o;export{e as default};
//# sourceMappingURL=decode-ape-ZWC6KJ5J.js.map
