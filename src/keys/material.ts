import crypto from 'node:crypto';
import { promisify } from 'node:util';
import type forge from 'node-forge';
import type { StoredPublicJwk } from '../db/schema';

const generateKeyPair = promisify(crypto.generateKeyPair);

/** A freshly generated signing key, before it is encrypted and stored. */
export interface KeyMaterial {
  kid: string;
  bits: number;
  publicJwk: StoredPublicJwk;
  /** PKCS#8 DER: the caller encrypts it and drops it. */
  privatePkcs8: Buffer;
  /** Base64 DER of the self-signed certificate. */
  certificate: string;
  x5tS256: string;
}

/** Generates the key material of one signing key; injectable so tests can stop or slow a transition. */
export type KeyGenerator = (bits: number, now: Date) => Promise<KeyMaterial>;

/** RFC 7638 thumbprint of an RSA public key: base64url SHA-256 of `{"e","kty","n"}` in that order. */
export function rsaThumbprint(jwk: StoredPublicJwk): string {
  const canonical = JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n });
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

// A certificate outlives any sane key lifetime; verifiers use x5c for the key, not for expiry.
const CERTIFICATE_YEARS = 5;

type Forge = typeof forge;

function selfSignedCertificate(forge: Forge, kid: string, publicPem: string, privatePem: string, now: Date): Buffer {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem);
  // A positive serial of 16 random bytes (RFC 5280 §4.1.2.2).
  cert.serialNumber = '01' + crypto.randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + CERTIFICATE_YEARS * 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: `idp signing key ${kid}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, critical: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privatePem), forge.md.sha256.create());
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

/**
 * Generates an RSA key with Node's native crypto, off the event loop, and its certificate with
 * node-forge (about 25 ms of pure JS: once per key, never per request).
 */
export const generateKeyMaterial: KeyGenerator = async (bits, now) => {
  const { publicKey, privateKey } = await generateKeyPair('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  const jwk = publicKey.export({ format: 'jwk' });
  const publicJwk: StoredPublicJwk = { kty: 'RSA', n: jwk.n as string, e: jwk.e as string };
  const kid = rsaThumbprint(publicJwk);
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  // node-forge is loaded on the first key generated, not at start: most processes (the CLI listing keys) never need it.
  const { default: forgeModule } = await import('node-forge');
  const der = selfSignedCertificate(forgeModule, kid, publicKey.export({ type: 'spki', format: 'pem' }) as string, privatePem, now);
  return {
    kid,
    bits,
    publicJwk,
    privatePkcs8: privateKey.export({ type: 'pkcs8', format: 'der' }),
    certificate: der.toString('base64'),
    x5tS256: crypto.createHash('sha256').update(der).digest('base64url'),
  };
};
