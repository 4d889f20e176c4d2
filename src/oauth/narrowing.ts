import { parseScope } from '../clients/service';
import { quoted } from '../text';
import { InvalidRequest, InvalidScope, InvalidTarget } from './errors';

/**
 * How every grant narrows what it issues (docs/oauth.md "OAuth 2.0 client credentials", "API keys"): the
 * scope and the audience a request asks for, within what the holder (a client, an API key's owner)
 * may have. The refusals name the holder: "scope not allowed for this client: admin".
 */

/** `scope` (RFC 6749 §3.3): a subset of `allowed`; absent or empty means all of them. */
export function narrowScopes(allowed: readonly string[], requested: string | undefined, refusal: string): readonly string[] {
  if (requested === undefined) return allowed;
  const scopes = parseScope(requested);
  if (scopes === undefined) throw new InvalidRequest('malformed scope parameter');
  if (scopes.length === 0) return allowed;
  const refused = scopes.filter((s) => !allowed.includes(s));
  if (refused.length > 0) throw new InvalidScope(`scope ${refusal}: ${quoted(refused.join(' '))}`);
  return scopes;
}

/**
 * `aud`: the `resource` (RFC 8707) or `audience` (RFC 8693) parameter when it is among `allowed`;
 * with neither, the first of `allowed` (the default). Both given must name the same target.
 */
export function narrowAudience(allowed: readonly string[], resource: string | undefined, audience: string | undefined, holder: string): string {
  if (resource !== undefined && audience !== undefined && resource !== audience) {
    throw new InvalidTarget('resource and audience name different targets; give one');
  }
  const requested = resource ?? audience;
  const fallback = allowed[0];
  if (fallback === undefined) throw new InvalidTarget(`${holder} has no audience`);
  if (requested === undefined) return fallback;
  if (!allowed.includes(requested)) throw new InvalidTarget(`the requested resource is not allowed for ${holder}`);
  return requested;
}
