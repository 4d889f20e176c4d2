import fs from 'node:fs';
import type { Command } from 'commander';
import { CliError, type CliContext, type OutputOptions } from './context';
import { decodeToken, EXPECTED_TYP, fetchIssuerKeys, TokenRejected, verifyToken, type DecodedToken, type IssuerKeys } from './verify-token';

/** `idp verify --json` shape. */
export interface VerifyReport {
  valid: boolean;
  /** `valid`, or the cause of the refusal. */
  verdict: string;
  /** The stable code of the refusal (TokenRejected codes), null when valid. */
  error: string | null;
  issuer: string;
  jwks_uri: string;
  audience: string | null;
  header: DecodedToken['header'] | null;
  claims: DecodedToken['claims'] | null;
}

const TIME_CLAIMS = ['exp', 'iat', 'nbf', 'auth_time'];

/** Claims as JSON, each time claim followed by its ISO form so the operator need not convert. */
function claimLines(claims: DecodedToken['claims']): string {
  return JSON.stringify(claims, null, 2)
    .split('\n')
    .map((line) => {
      const match = /^ {2}"(\w+)": (-?\d+(?:\.\d+)?),?$/.exec(line);
      return match && TIME_CLAIMS.includes(match[1] as string) ? `${line}  (${new Date(Number(match[2]) * 1000).toISOString()})` : line;
    })
    .join('\n');
}

export function registerVerifyCommand(program: Command, context: CliContext): void {
  program
    .command('verify')
    .description(`verify a token as a resource server would: the issuer's discovery and JWKS, RS256, typ ${EXPECTED_TYP}, iss, aud, exp`)
    .argument('<token>', 'the token (a leading "Bearer " is ignored), or - to read it from stdin')
    .option('--issuer <url>', 'the issuer whose published keys decide (default: IDP_ISSUER, this server)')
    .option('--audience <audience>', 'an audience the token must carry in aud (not checked when omitted)')
    .option('--json', 'print JSON')
    .action(async (argument: string, opts: OutputOptions & { issuer?: string; audience?: string }) => {
      const input = argument === '-' ? fs.readFileSync(0, 'utf8') : argument;
      const token = input.trim().replace(/^bearer\s+/i, '');
      const issuer = (opts.issuer ?? context.config().issuer).replace(/\/+$/, '');
      const keys = await fetchIssuerKeys(issuer).catch((error: Error) => {
        throw new CliError(error.message);
      });
      let decoded: DecodedToken | null = null;
      let verdict: string;
      let rejected: TokenRejected | undefined;
      try {
        decoded = decodeToken(token);
        const verified = await verifyToken(token, keys, { audience: opts.audience, now: context.now() });
        verdict = validVerdict(verified.kid, keys, verified.claims.exp, opts.audience);
      } catch (error) {
        if (!(error instanceof TokenRejected)) throw error;
        rejected = error;
        verdict = error.message;
      }
      const report: VerifyReport = {
        valid: rejected === undefined,
        verdict,
        error: rejected?.code ?? null,
        issuer,
        jwks_uri: keys.jwksUri,
        audience: opts.audience ?? null,
        header: decoded?.header ?? null,
        claims: decoded?.claims ?? null,
      };
      const text = [
        ...(decoded ? ['header:', JSON.stringify(decoded.header, null, 2), 'claims:', claimLines(decoded.claims)] : []),
        `verdict: ${rejected ? `INVALID: ${verdict}` : verdict}`,
      ].join('\n');
      context.print(opts, report, text);
      if (rejected) throw new CliError(`token rejected: ${rejected.message}`);
    });
}

function validVerdict(kid: string, keys: IssuerKeys, exp: unknown, audience: string | undefined): string {
  const expires = typeof exp === 'number' ? `, expires at ${new Date(exp * 1000).toISOString()}` : '';
  const aud = audience === undefined ? 'aud not checked (no --audience)' : `aud contains "${audience}"`;
  return `valid: RS256 signature verifies with key "${kid}" of ${keys.jwksUri}; iss "${keys.issuer}", typ ${EXPECTED_TYP}, ${aud}${expires}`;
}
