import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';

/**
 * A token's claims read without verifying it, to decide which token kind it is before the kind
 * verifies it (introspection, revocation). Undefined when it is not a JWS of the given `typ`, or not
 * a JWS at all: never throws for bad input.
 */
export function peekClaims(token: string, typ: string): JWTPayload | undefined {
  try {
    if (decodeProtectedHeader(token).typ !== typ) return undefined;
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}
