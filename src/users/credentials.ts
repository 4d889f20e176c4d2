import { z } from 'zod';
import { ServiceError } from '../errors';
import { PASSWORD_MAX_BYTES, PASSWORD_MIN_LENGTH } from './passwords';
import { credentialsBody } from './schemas';

/** RFC 5321 limit on a path, which bounds every address. */
const EMAIL_MAX_LENGTH = 254;

/**
 * One spelling per address: trimmed, Unicode NFC, lower case. Lower-casing the local part is what
 * people expect (providers treat it case-insensitively), even though RFC 5321 allows otherwise.
 */
export function normaliseEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}

export interface Credentials {
  email: string;
  password: string;
}

/**
 * Reads `{email, password}` from a body. The password is bounded before anything hashes it: a
 * 1 MB password is refused here, never fed to argon2.
 */
export function readCredentials(body: unknown, purpose: 'signup' | 'signin'): Credentials {
  const shape = credentialsBody.safeParse(body);
  if (!shape.success) throw new ServiceError('invalid_request', 'body must be JSON {"email": string, "password": string}');
  const email = normaliseEmail(shape.data.email);
  if (email.length > EMAIL_MAX_LENGTH || !z.email().safeParse(email).success) {
    throw new ServiceError('invalid_request', `email must be an address such as name@example.com, at most ${EMAIL_MAX_LENGTH} characters`);
  }
  const password = shape.data.password;
  if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
    throw new ServiceError('invalid_request', `password must be at most ${PASSWORD_MAX_BYTES} bytes`);
  }
  if (purpose === 'signup' && [...password].length < PASSWORD_MIN_LENGTH) {
    throw new ServiceError('weak_password', `password must be at least ${PASSWORD_MIN_LENGTH} characters`);
  }
  return { email, password };
}
