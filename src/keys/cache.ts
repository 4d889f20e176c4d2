import crypto from 'node:crypto';
import { openPrivateKey } from '../crypto/envelope';
import type { MekProvider } from '../crypto/mek';
import type { DatabaseHandle } from '../db';
import type { SigningKeyRow } from '../db/schema';
import type { Logger } from '../observability/logger';
import { buildJwks, type JwksSnapshot } from './jwks';
import { envelopeOf, KEYS_CHANNEL, listPublishedKeys } from './repository';

/** The key that signs, parsed once: signing never touches the database or re-parses a PEM. */
export interface SigningKey {
  kid: string;
  privateKey: crypto.KeyObject;
  activatedAt: Date;
}

export class NoSigningKeyError extends Error {
  readonly code = 'ERR_NO_SIGNING_KEY';
  constructor() {
    super('no current signing key is loaded');
    this.name = 'NoSigningKeyError';
  }
}

export interface KeyCacheDeps {
  handle: DatabaseHandle;
  mek: MekProvider;
  logger: Logger;
  /** Periodic re-read, the fallback for a missed notification. */
  refreshIntervalMs: number;
  onRefresh?(snapshot: KeySnapshot): void;
}

export interface KeySnapshot {
  signing: SigningKey | undefined;
  jwks: JwksSnapshot;
  rows: readonly SigningKeyRow[];
  loadedAt: Date;
}

/**
 * Each process's view of the keys: the current private key as a KeyObject and the JWKS as bytes.
 * Refreshed on every `idp_keys` notification and every `refreshIntervalMs`; when the database is
 * unreachable, the last good view keeps serving.
 */
export class KeyCache {
  private snapshot: KeySnapshot | undefined;
  private fingerprint = '';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: KeyCacheDeps) {}

  /** Loads the keys (throws if that fails), then subscribes and starts the periodic re-read. */
  async start(): Promise<void> {
    await this.load();
    await this.deps.handle.listen(
      KEYS_CHANNEL,
      () => this.refresh(),
      () => {
        // Changes made while the connection was down were not announced: read the keys now.
        this.deps.logger.info('signing keys re-read: the notification connection was restored');
        void this.refresh();
      },
    );
    this.timer = setInterval(() => this.refresh(), this.deps.refreshIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get loaded(): boolean {
    return this.snapshot?.signing !== undefined;
  }

  get current(): SigningKey {
    const signing = this.snapshot?.signing;
    if (!signing) throw new NoSigningKeyError();
    return signing;
  }

  get jwks(): JwksSnapshot | undefined {
    return this.snapshot?.jwks;
  }

  get state(): KeySnapshot | undefined {
    return this.snapshot;
  }

  /** Re-reads the keys; concurrent calls coalesce into one more read. Never throws. */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.load();
        } catch (error) {
          this.deps.logger.warn({ err: (error as Error).message }, 'key refresh failed; serving the keys last loaded');
        }
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async load(): Promise<void> {
    const rows = await listPublishedKeys(this.deps.handle.db);
    const fingerprint = rows.map((r) => `${r.kid}:${r.state}`).join(',');
    if (fingerprint === this.fingerprint && this.snapshot) return;
    const currentRow = rows.find((r) => r.state === 'current');
    let signing = this.snapshot?.signing;
    if (!currentRow) signing = undefined;
    else if (signing?.kid !== currentRow.kid) signing = await this.decrypt(currentRow);
    this.snapshot = { signing, jwks: buildJwks(rows), rows, loadedAt: new Date() };
    this.fingerprint = fingerprint;
    this.deps.logger.info({ kids: fingerprint }, 'signing keys loaded');
    this.deps.onRefresh?.(this.snapshot);
  }

  private async decrypt(row: SigningKeyRow): Promise<SigningKey> {
    const envelope = envelopeOf(row);
    if (!envelope) throw new Error(`current key ${row.kid} has no private material`);
    const der = await openPrivateKey(this.deps.mek, envelope, row.kid, row.purpose);
    try {
      const privateKey = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      return { kid: row.kid, privateKey, activatedAt: row.activated_at as Date };
    } finally {
      der.fill(0);
    }
  }
}
