import { createHash } from 'node:crypto';
import type { Config } from '../config';
import { limitedAddress } from '../http/client-address';
import type { FailureLimiter, FailureRule, Reservation } from './index';

export type AbuseLimitSettings = Pick<Config, 'tokenFailureLimits' | 'signInFailureLimits' | 'signUpLimits' | 'registrationLimits' | 'rateLimitAllowlist'>;

/**
 * The abuse limits of docs/security.md "Abuse limits and the threat model" as policies over the shared failure counter. The rule behind every
 * one of them: no attacker may lock out a caller who presents correct credentials from another
 * address. So
 * - client authentication is only ever refused on the failure path: a correct secret of an active
 *   client is never checked against a block (secrets are 256-bit random: nothing to guess);
 * - sign-in counts per (email, address) pair, per address and per email. Each attempt is reserved
 *   on all three at once before its hash and counted only if it fails; a refused attempt is counted
 *   nowhere, so however many race, one address adds at most `perEmailIp` failures to an email's
 *   count and can never reach the per-email limit alone;
 * - sign-up reserves a slot per address before its hash, and a dynamic client registration one
 *   before its insert;
 * - addresses on `IDP_RATE_LIMIT_ALLOWLIST` are exempt from the per-address limits only.
 *
 * Keys (what `idp limits list` shows): `oauth:ip:<address>`, `oauth:client:<client id>`,
 * `signin:pair:<address>|<email>`, `signin:ip:<address>`, `signin:email:<email>`,
 * `signup:ip:<address>`, `register:ip:<address>`, `apikey:ip:<address>`. IPv6 addresses are counted per /64.
 */
export class AbuseLimits {
  private readonly oauthIp: FailureRule;
  private readonly oauthClient: FailureRule;
  private readonly signInPair: FailureRule;
  private readonly signInIp: FailureRule;
  private readonly signInEmail: FailureRule;
  private readonly signUpIp: FailureRule;
  private readonly registerIp: FailureRule;

  constructor(
    private readonly limiter: FailureLimiter,
    private readonly settings: AbuseLimitSettings,
  ) {
    const { tokenFailureLimits: token, signInFailureLimits: signIn, signUpLimits: signUp } = settings;
    this.oauthIp = { limit: token.perIp, windowMs: token.windowMs };
    this.oauthClient = { limit: token.perClient, windowMs: token.windowMs };
    this.signInPair = { limit: signIn.perEmailIp, windowMs: signIn.windowMs };
    this.signInIp = { limit: signIn.perIp, windowMs: signIn.windowMs };
    this.signInEmail = { limit: signIn.perEmail, windowMs: signIn.windowMs };
    this.signUpIp = { limit: signUp.perIp, windowMs: signUp.windowMs };
    this.registerIp = { limit: settings.registrationLimits.perIp, windowMs: settings.registrationLimits.windowMs };
  }

  /**
   * A failed client authentication at /oauth/* (or a failed API-key presentation): throws nothing,
   * returns the Retry-After seconds when the caller is blocked (the failure is then not counted),
   * else counts it and returns 0. `clientId` only for a client that exists: an unknown id is never
   * stored (it may be a secret pasted into the wrong field).
   */
  async clientAuthenticationFailed(address: string, clientId?: string): Promise<number> {
    const keys = [...this.addressKeys('oauth', address).map((key) => ({ key, rule: this.oauthIp }))];
    if (clientId !== undefined) keys.push({ key: `oauth:client:${clientId}`, rule: this.oauthClient });
    const wait = this.limiter.retryAfterSeconds(keys.map((k) => k.key));
    if (wait > 0) return wait;
    await this.limiter.recordFailure(keys);
    return 0;
  }

  /**
   * A failed API-key presentation (a well-formed key that is unknown, wrong, revoked or expired):
   * counted per address under its own key with the client-authentication rule; the Retry-After
   * seconds when the address is blocked (then not counted), else 0. A correct key never gets here.
   */
  async apiKeyPresentationFailed(address: string): Promise<number> {
    const keys = this.addressKeys('apikey', address);
    const wait = this.limiter.retryAfterSeconds(keys);
    if (wait > 0) return wait;
    await this.limiter.recordFailure(keys.map((key) => ({ key, rule: this.oauthIp })));
    return 0;
  }

  /**
   * Reserves a sign-in attempt before its hash: refused (with the seconds to wait) when the pair, the
   * address or the email is full. The caller counts the attempt if the password is wrong and
   * releases it otherwise.
   */
  signInAttempt(email: string, address: string): Promise<Reservation> {
    return this.limiter.reserve(this.signInKeys(email, address));
  }

  /** Reserves a sign-up slot for the address before its hash: refused (with the seconds to wait) when none is left. */
  signUpAttempt(address: string): Promise<Reservation> {
    return this.limiter.reserve(this.addressKeys('signup', address).map((key) => ({ key, rule: this.signUpIp })));
  }

  /** Reserves a dynamic client registration for the address before its insert: refused (with the seconds to wait) when none is left. */
  registrationAttempt(address: string): Promise<Reservation> {
    return this.limiter.reserve(this.addressKeys('register', address).map((key) => ({ key, rule: this.registerIp })));
  }

  private signInKeys(email: string, address: string) {
    return [
      { key: `signin:pair:${limitedAddress(address)}|${email}`, rule: this.signInPair },
      { key: `signin:email:${email}`, rule: this.signInEmail },
      ...this.addressKeys('signin', address).map((key) => ({ key, rule: this.signInIp })),
    ];
  }

  /** The per-address key of a namespace, or none for an allow-listed address. */
  private addressKeys(namespace: string, address: string): string[] {
    return this.settings.rateLimitAllowlist(address) ? [] : [`${namespace}:ip:${limitedAddress(address)}`];
  }
}

/**
 * How an identifier the server does not know appears in logs: a short SHA-256 prefix, never the
 * text itself (a client secret pasted into `client_id` must not end up in a log file).
 */
export function fingerprint(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
}
