import { z } from 'zod';
import { parseScope } from '../clients/service';

/**
 * The zod fields several surfaces share (the admin API, the user API, API keys, the OAuth endpoints),
 * defined once: each capability's schemas (each folder's schemas.ts) build their requests and responses
 * from these, and the OpenAPI document is generated from those.
 */

/** An instant in a response: RFC 3339, UTC, as `Date.toISOString()` writes it. */
export const instantBody = z.iso.datetime().meta({ id: 'Instant', description: 'RFC 3339, UTC (2026-11-22T14:30:00.000Z).' });

/** `scopes` as an array or an RFC 6749 space-separated string. */
export const scopesField = z
  .union([z.array(z.string().max(200)).max(100), z.string().max(4000)])
  .transform((value, ctx) => {
    const scopes = typeof value === 'string' ? parseScope(value) : value;
    if (!scopes) {
      ctx.addIssue({ code: 'custom', message: 'malformed scope string' });
      return z.NEVER;
    }
    return scopes;
  })
  .meta({ description: 'An array of scopes, or one space-separated string.' });

/** The optional target parameters of a grant (RFC 6749 §3.3, RFC 8707, RFC 8693). */
export const targetFields = {
  scope: z.string().optional().meta({ description: 'Space-separated scopes: a subset of those allowed; absent means all of them.' }),
  resource: z.string().optional().meta({ description: 'RFC 8707: the audience of the token; one of those allowed.' }),
  audience: z.string().optional().meta({ description: 'Same as resource (RFC 8693 name); if both are given they must be equal.' }),
};

/** Keyset paging: pass `next_cursor` back unchanged as `cursor`. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(400).optional().meta({ description: 'The next_cursor of the previous page, unchanged.' }),
};
