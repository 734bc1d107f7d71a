import type { Musicgen } from '../model/musicgen.js';
export async function profileModel(_m: Musicgen, _o: { quick: boolean; log: (s: string) => void; say: (s: string) => void }): Promise<unknown> { return {}; }
