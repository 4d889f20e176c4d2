/**
 * What a client id is, in one place (a leaf: it imports nothing, so anything may use it).
 *
 * - Issued: the ids this server makes and stores (`generateClientId`, src/clients/secret.ts: 22
 *   base64url characters), `[A-Za-z0-9_-]`, at most 128. Where a stored client is named (the admin
 *   API, an API key's owner) any other text is malformed: refused (400) before a query.
 * - Presented: what a client may send at /oauth/* (Basic, `client_id`, an assertion's `iss`): any
 *   printable ASCII, at most 256, so that it can carry a URL (a client id URL of a Client ID Metadata
 *   Document). Whatever is presented, a client that is not an active client of ours is answered
 *   `invalid_client`, the same as a wrong secret: the answer never says which part was wrong.
 */

/** An id this server issues and stores. */
export const ISSUED_CLIENT_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** An id a client may present: printable ASCII (a URL fits), bounded. */
export const PRESENTED_CLIENT_ID = /^[\x21-\x7e]{1,256}$/;
