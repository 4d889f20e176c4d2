import crypto from 'node:crypto';
import { MekError, openAesGcm, sealAesGcm, type MekProvider } from './mek';

/** Version 1: AES-256-GCM data key per private key, wrapped by the MEK under AES-256-GCM. */
export const ENVELOPE_VERSION = 1;

export interface Envelope {
  version: number;
  mekId: string;
  wrappedDataKey: Buffer;
  ciphertext: Buffer;
}

export class EnvelopeError extends Error {
  readonly code = 'ERR_KEY_DECRYPT';
  constructor(
    readonly kid: string,
    detail: string,
  ) {
    super(`signing key ${kid}: private key does not decrypt (${detail})`);
    this.name = 'EnvelopeError';
  }
}

/**
 * Why a row's data key does not unwrap under a MEK the ring has. AES-GCM cannot tell the two
 * causes apart: the ring holds other bytes under that id (a pasted or regenerated key), or the row
 * (its wrapped key, kid, purpose or MEK id) was changed or copied from another row.
 */
function wrongKeyOrAltered(mekId: string): string {
  return `the key ring's key for MEK "${mekId}" does not open this row: wrong key for this id, or the row was altered`;
}

/** Binds a ciphertext to its row: the same bytes under another kid or purpose do not decrypt. */
export function keyAad(kid: string, purpose: string): Buffer {
  return Buffer.from(`idp-signing-key|v${ENVELOPE_VERSION}|kid:${kid}|purpose:${purpose}`);
}

export async function sealPrivateKey(mek: MekProvider, pkcs8Der: Buffer, kid: string, purpose: string): Promise<Envelope> {
  const dataKey = crypto.randomBytes(32);
  const aad = keyAad(kid, purpose);
  try {
    const ciphertext = sealAesGcm(dataKey, pkcs8Der, aad);
    const { mekId, wrapped } = await mek.wrap(dataKey, aad);
    return { version: ENVELOPE_VERSION, mekId, wrappedDataKey: wrapped, ciphertext };
  } finally {
    dataKey.fill(0);
  }
}

export async function openPrivateKey(mek: MekProvider, envelope: Envelope, kid: string, purpose: string): Promise<Buffer> {
  if (envelope.version !== ENVELOPE_VERSION) throw new EnvelopeError(kid, `unknown envelope version ${envelope.version}`);
  const aad = keyAad(kid, purpose);
  let dataKey: Buffer;
  try {
    dataKey = await mek.unwrap(envelope.mekId, envelope.wrappedDataKey, aad);
  } catch (error) {
    if (error instanceof MekError && error.code === 'ERR_MEK_MISSING') {
      throw new EnvelopeError(kid, `it is wrapped by MEK "${envelope.mekId}", which is not in the key ring`);
    }
    throw new EnvelopeError(kid, wrongKeyOrAltered(envelope.mekId));
  }
  try {
    return openAesGcm(dataKey, envelope.ciphertext, aad);
  } catch {
    // The MEK opened the data key, so the ring is right: the encrypted private key itself was altered.
    throw new EnvelopeError(kid, `the data key opens under MEK "${envelope.mekId}" but the encrypted private key does not: the row was altered`);
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps the data key under the primary MEK without touching the encrypted private key. */
export async function rewrapEnvelope(mek: MekProvider, envelope: Envelope, kid: string, purpose: string): Promise<Envelope> {
  const aad = keyAad(kid, purpose);
  let dataKey: Buffer;
  try {
    dataKey = await mek.unwrap(envelope.mekId, envelope.wrappedDataKey, aad);
  } catch (error) {
    if (error instanceof MekError && error.code === 'ERR_MEK_MISSING') {
      throw new EnvelopeError(kid, `it is wrapped by MEK "${envelope.mekId}", which is not in the key ring`);
    }
    throw new EnvelopeError(kid, wrongKeyOrAltered(envelope.mekId));
  }
  try {
    const { mekId, wrapped } = await mek.wrap(dataKey, aad);
    return { ...envelope, mekId, wrappedDataKey: wrapped };
  } finally {
    dataKey.fill(0);
  }
}
