// gsio-auth.js: a GSIO-Net node in a browser proves its key id to a
// gsio-relay (SPEC section 6, "Key ids") with a WebCrypto Ed25519 key.
// Plain JavaScript, no dependencies: the key id (a libp2p peer id) is
// computed here, the key never leaves the browser.
//
//   import { generateNodeKey, connectWithKey } from "./gsio-auth.js";
//
//   const key = await generateNodeKey();          // key.keyId: "12D3KooW…"
//   const node = await connectWithKey("wss://relay.example/ws", key);
//   node.send("EntryAnnounce", "", { entry: "…" }); // "" = broadcast
//   const msg = await node.receive(10000);        // next message, 10 s at most
//
// WebCrypto works only in a secure context: https, or http on localhost /
// 127.0.0.1. Ed25519 in WebCrypto needs Chrome 137+, Firefox 129+ or
// Safari 17+.

const B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// base58btc encodes bytes (Bitcoin alphabet): each leading zero byte
// becomes a "1", the rest is the big-endian number in base 58.
export function base58btc(bytes) {
  bytes = new Uint8Array(bytes);
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  const digits = []; // base-58 digits, least significant first
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i];
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] * 256;
      digits[j] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = "1".repeat(zeros);
  for (let i = digits.length - 1; i >= 0; i--) out += B58_ALPHABET[digits[i]];
  return out;
}

// base64url encodes bytes as base64url without padding (RFC 4648 §5).
export function base64url(bytes) {
  let bin = "";
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The 6 bytes before the raw key in every Ed25519 key id: the identity
// multihash header (code 0x00, length 0x24 = 36) of the protobuf
// PublicKey { Type: Ed25519 (field 1 = 1), Data (field 2, 32 bytes) }.
const KEY_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

// keyIdFromPublicKey returns the key id (libp2p peer id, "12D3KooW…") of a
// raw 32-byte Ed25519 public key.
export function keyIdFromPublicKey(raw) {
  raw = new Uint8Array(raw);
  if (raw.length !== 32) throw new Error(`an Ed25519 public key has 32 bytes, not ${raw.length}`);
  const b = new Uint8Array(KEY_ID_PREFIX.length + raw.length);
  b.set(KEY_ID_PREFIX);
  b.set(raw, KEY_ID_PREFIX.length);
  const id = base58btc(b);
  // Every Ed25519 key id starts so; anything else is a broken encoder, and
  // a relay would take it for a plain node id (no challenge, no proof).
  if (!id.startsWith("12D3KooW")) throw new Error(`computed key id ${id} does not start with 12D3KooW`);
  return id;
}

// signedBytes returns the UTF-8 bytes a node signs to answer a challenge:
// "gsio-node-auth/1\n<relay peer id>\n<key id>\n<nonce>\n<ts>".
export function signedBytes(relay, keyId, nonce, ts) {
  return new TextEncoder().encode(`gsio-node-auth/1\n${relay}\n${keyId}\n${nonce}\n${ts}`);
}

// nodeKey turns a WebCrypto Ed25519 key pair into a node key:
// { keyId, publicKey (raw bytes), privateKey (CryptoKey) }. A public key can
// always be exported, so the private key may be non-extractable.
export async function nodeKey(pair) {
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { keyId: keyIdFromPublicKey(publicKey), publicKey, privateKey: pair.privateKey };
}

// generateNodeKey makes a new Ed25519 node key with WebCrypto.
export async function generateNodeKey() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  return nodeKey(pair);
}

// signChallenge returns the base64url (no padding) Ed25519 signature of
// the answer to a challenge.
export async function signChallenge(privateKey, relay, keyId, nonce, ts) {
  const sig = await crypto.subtle.sign("Ed25519", privateKey, signedBytes(relay, keyId, nonce, ts));
  return base64url(sig);
}

// AuthError is why connectWithKey failed: code and reason of the WebSocket
// close (code 4001 = authentication failed), or a RelayError's code.
export class AuthError extends Error {
  constructor(message, { code = 0, reason = "", relayError = null } = {}) {
    super(message);
    this.name = "AuthError";
    this.code = code;
    this.reason = reason;
    this.relayError = relayError;
  }
}

// connectWithKey connects to the relay's WebSocket URL as key.keyId,
// answers the RelayChallenge and resolves, after RelayAuthOk, with a node:
//   node.keyId, node.relay (the relay's peer id), node.ws,
//   node.send(type, recipient, payload) -> message_id ("" = broadcast),
//   node.receive(timeoutMs) -> the next message (a parsed object),
//   node.closed -> a promise of { code, reason } when the connection ends.
// It rejects with an AuthError when the relay closes first (4001 for a
// refused answer) or after timeoutMs.
// options: timeoutMs (default 10000); onChallenge(payload), called before
// the answer; sign(bytes) -> signature bytes, to sign elsewhere than with
// key.privateKey (a test uses it to send a wrong signature).
export function connectWithKey(url, key, options = {}) {
  const { timeoutMs = 10000, onChallenge = null, sign = null } = options;
  const u = new URL(url);
  u.searchParams.set("node_id", key.keyId);
  const ws = new WebSocket(u.toString());

  const queue = []; // messages not yet taken by receive
  const waiters = []; // receive calls waiting for a message
  let closeInfo = null;
  let resolveClosed;
  const closed = new Promise((r) => { resolveClosed = r; });

  const node = {
    keyId: key.keyId,
    relay: "",
    ws,
    closed,
    send(type, recipient, payload) {
      const id = crypto.randomUUID();
      ws.send(JSON.stringify({
        message_type: type, message_id: id, sender_id: key.keyId,
        recipient_id: recipient, payload: payload ?? {},
      }));
      return id;
    },
    receive(ms = 10000) {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (closeInfo) return Promise.reject(new AuthError(`connection closed (${closeInfo.code})`, closeInfo));
      return new Promise((resolve, reject) => {
        const w = { resolve, reject };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no message within ${ms} ms`));
        }, ms);
        waiters.push(w);
      });
    },
  };

  return new Promise((resolve, reject) => {
    let authed = false;
    let challenged = false;
    const timer = setTimeout(() => {
      // No challenge at all: the relay predates key ids (SPEC 6), or took
      // node_id for a plain id.
      const want = challenged ? "RelayAuthOk" : "RelayChallenge";
      reject(new AuthError(`no ${want} within ${timeoutMs} ms`));
      ws.close();
    }, timeoutMs);
    const fail = (err) => { clearTimeout(timer); reject(err); ws.close(); };

    ws.onclose = (ev) => {
      closeInfo = { code: ev.code, reason: ev.reason };
      resolveClosed(closeInfo);
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new AuthError(`connection closed (${ev.code})`, closeInfo));
      }
      if (!authed) {
        clearTimeout(timer);
        reject(new AuthError(`closed before RelayAuthOk: ${ev.code} ${ev.reason}`, closeInfo));
      }
    };

    ws.onmessage = async (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        if (!authed) fail(new AuthError(`unparsable frame: ${e.message}`));
        return;
      }
      if (authed) {
        const w = waiters.shift();
        if (w) { clearTimeout(w.timer); w.resolve(m); } else queue.push(m);
        return;
      }
      switch (m.message_type) {
        case "RelayChallenge": {
          const { relay, nonce } = m.payload;
          challenged = true;
          node.relay = relay;
          if (onChallenge) onChallenge(m.payload);
          const ts = Date.now();
          try {
            const sig = sign
              ? base64url(await sign(signedBytes(relay, key.keyId, nonce, ts)))
              : await signChallenge(key.privateKey, relay, key.keyId, nonce, ts);
            ws.send(JSON.stringify({
              message_type: "NodeAuth", message_id: crypto.randomUUID(), sender_id: key.keyId,
              recipient_id: "relay", payload: { relay, nonce, ts, sig },
            }));
          } catch (e) {
            fail(new AuthError(`signing failed: ${e.message}`));
          }
          return;
        }
        case "RelayAuthOk":
          if (m.payload?.node_id !== key.keyId) {
            fail(new AuthError(`RelayAuthOk for ${m.payload?.node_id}, not ${key.keyId}`));
            return;
          }
          authed = true;
          clearTimeout(timer);
          resolve(node);
          return;
        case "RelayError":
          fail(new AuthError(`RelayError ${m.payload?.code}: ${m.payload?.message}`, { relayError: m.payload }));
          return;
        default:
          fail(new AuthError(`unexpected ${m.message_type} before RelayAuthOk`));
      }
    };
  });
}
