import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The master encryption key (MEK) behind a small interface, so that a KMS can stand in for the
 * in-process key ring later: it only wraps and unwraps data keys, and never hands out key bytes.
 */
export interface MekProvider {
  /** The id of the key that wraps new data keys (the first of the ring). */
  readonly primaryId: string;
  /** Every id that can unwrap. */
  readonly ids: readonly string[];
  has(id: string): boolean;
  wrap(dataKey: Buffer, aad: Buffer): Promise<{ mekId: string; wrapped: Buffer }>;
  unwrap(mekId: string, wrapped: Buffer, aad: Buffer): Promise<Buffer>;
  /**
   * A 32-byte key for `label` from each key of the ring, primary first (HKDF-SHA256): secret, the
   * same on every instance that shares the ring, and one-way, so no MEK byte leaves the provider.
   */
  deriveKeys(label: string): readonly Buffer[];
}

export class MekError extends Error {
  constructor(
    readonly code: 'ERR_MEK_FORMAT' | 'ERR_MEK_MISSING' | 'ERR_MEK_UNWRAP',
    message: string,
  ) {
    super(message);
    this.name = 'MekError';
  }
}

const MEK_ID = /^[A-Za-z0-9._-]{1,64}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM with a random 96-bit IV; output is iv ‖ tag ‖ ciphertext. */
export function sealAesGcm(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = crypto.randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Inverse of sealAesGcm; throws when the ciphertext, the key or the AAD does not match. */
export function openAesGcm(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error('ciphertext too short');
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

/**
 * Parses a key ring: `id:base64key[,id:base64key...]`; commas or new lines separate entries and
 * `#` starts a comment (the file form, see keys.example). Each key must be exactly 32 bytes.
 */
export function parseKeyRing(text: string, source: string): Map<string, Buffer> {
  const ring = new Map<string, Buffer>();
  const entries = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join(',')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new MekError('ERR_MEK_FORMAT', `${source}: the key ring is empty`);
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const encoded = colon < 0 ? '' : entry.slice(colon + 1);
    if (!MEK_ID.test(id)) {
      throw new MekError('ERR_MEK_FORMAT', `${source}: entry ${index + 1} is not "id:base64key" with an id of letters, digits, . _ -`);
    }
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) {
      throw new MekError('ERR_MEK_FORMAT', `${source}: key "${id}" is not base64`);
    }
    const key = Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64');
    if (key.length !== 32) {
      throw new MekError('ERR_MEK_FORMAT', `${source}: key "${id}" is ${key.length} bytes; a MEK is 32 random bytes`);
    }
    if (ring.has(id)) throw new MekError('ERR_MEK_FORMAT', `${source}: key id "${id}" appears twice`);
    ring.set(id, key);
  }
  return ring;
}

/** A new key-ring entry `id:base64`, as `idp mek generate` prints it. */
export function generateKeyRingEntry(now: Date = new Date()): string {
  const stamp = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `mek-${stamp}-${crypto.randomBytes(3).toString('hex')}:${crypto.randomBytes(32).toString('base64')}`;
}

/** The in-process key ring: the first key wraps, all keys unwrap. */
export class KeyRingMekProvider implements MekProvider {
  readonly primaryId: string;
  readonly ids: readonly string[];

  constructor(private readonly ring: ReadonlyMap<string, Buffer>) {
    const first = ring.keys().next();
    if (first.done) throw new MekError('ERR_MEK_FORMAT', 'the key ring is empty');
    this.primaryId = first.value;
    this.ids = [...ring.keys()];
  }

  has(id: string): boolean {
    return this.ring.has(id);
  }

  async wrap(dataKey: Buffer, aad: Buffer): Promise<{ mekId: string; wrapped: Buffer }> {
    const key = this.ring.get(this.primaryId) as Buffer;
    return { mekId: this.primaryId, wrapped: sealAesGcm(key, dataKey, wrapAad(this.primaryId, aad)) };
  }

  deriveKeys(label: string): readonly Buffer[] {
    // The label is the HKDF info: keys for different purposes are independent of each other and of the wraps.
    return [...this.ring.values()].map((key) => Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), `rs256-idp ${label}`, 32)));
  }

  async unwrap(mekId: string, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    const key = this.ring.get(mekId);
    if (!key) throw new MekError('ERR_MEK_MISSING', `MEK "${mekId}" is not in the key ring`);
    try {
      return openAesGcm(key, wrapped, wrapAad(mekId, aad));
    } catch {
      throw new MekError('ERR_MEK_UNWRAP', `the data key does not unwrap under MEK "${mekId}"`);
    }
  }
}

// The wrapped data key is bound to the MEK id too, so a row cannot claim another MEK.
function wrapAad(mekId: string, aad: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`mek:${mekId}|`), aad]);
}

export interface MekSource {
  production: boolean;
  mek: string | undefined;
  mekFile: string | undefined;
  devMekFile: string;
}

export interface LoadedMek {
  provider: MekProvider;
  /** Set when a development ring was generated just now (the caller logs a loud warning). */
  generatedDevRing?: string;
  source: string;
}

/**
 * Resolves the key ring: `IDP_MEK`, else `IDP_MEK_FILE`, else (outside production) the
 * development ring, generated once with mode 0600.
 */
export function loadMek(source: MekSource): LoadedMek {
  if (source.mek !== undefined) {
    return { provider: new KeyRingMekProvider(parseKeyRing(source.mek, 'IDP_MEK')), source: 'IDP_MEK' };
  }
  if (source.mekFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(source.mekFile, 'utf8');
    } catch (error) {
      throw new MekError('ERR_MEK_FORMAT', `IDP_MEK_FILE: cannot read ${source.mekFile} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return { provider: new KeyRingMekProvider(parseKeyRing(text, 'IDP_MEK_FILE')), source: source.mekFile };
  }
  if (source.production) throw new MekError('ERR_MEK_FORMAT', 'IDP_MEK: required in production');
  const file = path.resolve(source.devMekFile);
  let generated: string | undefined;
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const body = `# Development key ring, generated ${new Date().toISOString()}. Never use it in production.\n${generateKeyRingEntry()}\n`;
    try {
      fs.writeFileSync(file, body, { mode: 0o600, flag: 'wx' });
      generated = file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const text = fs.readFileSync(file, 'utf8');
  return { provider: new KeyRingMekProvider(parseKeyRing(text, file)), generatedDevRing: generated, source: file };
}

/**
 * `loadMek` for a process that runs: the server at start, and a CLI command. A development ring
 * generated just now is announced loudly, once, on the given logger.
 */
export function loadMekRing(source: MekSource, logger: { warn(details: object, message: string): void }): MekProvider {
  const loaded = loadMek(source);
  if (loaded.generatedDevRing) {
    logger.warn(
      { file: loaded.generatedDevRing },
      'DEVELOPMENT KEY RING GENERATED: signing keys are encrypted under a MEK kept next to the data. Set IDP_MEK or IDP_MEK_FILE before production.',
    );
  }
  return loaded.provider;
}
