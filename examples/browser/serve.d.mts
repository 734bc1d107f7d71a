import type { Server } from 'node:http';

export interface RequestRecord {
  method: string;
  /** Decoded URL path, e.g. /weights/tiny-musicgen/model.safetensors */
  path: string;
  /** The Range header as sent, if any. */
  range: string | undefined;
  status: number;
  /** Body bytes sent (0 for HEAD). */
  bytes: number;
}

export function parseRange(header: string, size: number): [number, number] | null | 'unsatisfiable';

export function createStaticServer(opts?: { root?: string; onRequest?: (r: RequestRecord) => void }): Server;
