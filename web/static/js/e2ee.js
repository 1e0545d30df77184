// End-to-end encryption in the browser: this device's MLS client (ts-mls,
// vendored under /static/vendor), its keys and groups kept in IndexedDB,
// never sent anywhere. The server orders and stores the MLS messages; this
// module makes and reads them. A message can be decrypted once only
// (forward secrecy), so what this device read or sent is kept here too,
// by conversation and seq, to show history again.
//
// Every change of the MLS state runs on one promise chain, in log order:
// live events (which the connection delivers in seq order, gaps filled)
// and this device's own commits and messages.

import * as mls from "../vendor/ts-mls/dist/src/index.js";
import { makeKeyPackageRef } from "../vendor/ts-mls/dist/src/keyPackage.js";
import { defaultClientConfig } from "../vendor/ts-mls/dist/src/clientConfig.js";

export const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const TOP_UP = 20; // one-time key packages published at a time
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

// lifetime: from an hour ago (clock skew) for 30 days, within the
// server's 90.
function lifetime() {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return { notBefore: now - 3600n, notAfter: now + 30n * 86400n };
}

// A tiny key-value store over one IndexedDB object store.
class Store {
  static open(name) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("kv");
      req.onsuccess = () => resolve(new Store(req.result));
      req.onerror = () => reject(req.error);
    });
  }
  constructor(db) {
    this.db = db;
  }
  op(mode, f) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("kv", mode);
      const req = f(tx.objectStore("kv"));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
    });
  }
  get(key) {
    return this.op("readonly", (s) => s.get(key));
  }
  put(key, value) {
    return this.op("readwrite", (s) => s.put(value, key));
  }
}

// fingerprint is a credential's safety number: the SHA-256 of its
// identity and signature public key, as 16 groups of 4 hex digits.
export async function fingerprint(identity, signaturePublicKey) {
  const buf = new Uint8Array(identity.length + signaturePublicKey.length);
  buf.set(identity);
  buf.set(signaturePublicKey, identity.length);
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  const hex = [...sum].map((b) => b.toString(16).padStart(2, "0")).join("");
  return hex.match(/.{4}/g).join(" ");
}

export class E2EE extends EventTarget {
  constructor(api, me, device) {
    super();
    Object.assign(this, { api, me, device });
    this.id = `${me}/${device}`;
    this.groups = new Map(); // conversation -> ClientState
    this.pending = new Map(); // base64 commit -> state after it
    this.chain = Promise.resolve();
  }

  // init opens this device's store and tops its key packages up; every
  // other call waits for it.
  init() {
    return this.serial(() => this.setup());
  }

  async setup() {
    this.impl = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(SUITE));
    this.store = await Store.open(`parley-e2ee-${this.id}`);
    this.keyPackages = (await this.store.get("keyPackages")) || [];
    await this.topUp();
  }

  serial(f) {
    const p = this.chain.then(f);
    this.chain = p.catch(() => {});
    return p;
  }

  credential() {
    return { credentialType: "basic", identity: utf8.encode(this.id) };
  }

  // topUp publishes key packages when the server says this device is
  // low, keeping their private keys here.
  async topUp() {
    const path = `/v1/devices/${encodeURIComponent(this.device)}/key-packages`;
    let st = await this.api.request("GET", path);
    if (this.keyPackages.length === 0 && (st.available > 0 || st.last_resort)) {
      // This device's store is new (the browser's storage was cleared)
      // but the server has key packages of it, whose private keys are
      // gone: remove the device, and with it those packages, first.
      await this.api.request("DELETE", `/v1/devices/${encodeURIComponent(this.device)}`);
      st = { low: true, last_resort: false };
    }
    if (!st.low && st.last_resort) return;
    const made = [];
    for (let i = 0; i <= TOP_UP; i++) {
      made.push(await mls.generateKeyPackage(this.credential(), mls.defaultCapabilities(), lifetime(), [], this.impl));
    }
    this.keyPackages.push(...made);
    await this.store.put("keyPackages", this.keyPackages);
    const wire = (kp) => b64(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }));
    await this.api.request("POST", path, {
      key_packages: made.slice(0, TOP_UP).map(wire),
      last_resort: wire(made[TOP_UP]),
    });
  }

  async group(conv) {
    if (!this.groups.has(conv)) {
      const bytes = await this.store.get(`group:${conv}`);
      if (bytes) this.groups.set(conv, { ...mls.decodeGroupState(bytes, 0)[0], clientConfig: defaultClientConfig });
    }
    return this.groups.get(conv);
  }

  async setGroup(conv, state) {
    this.groups.set(conv, state);
    await this.store.put(`group:${conv}`, mls.encodeGroupState(state));
  }

  // text returns what this device read or sent at seq, if it did.
  text(conv, seq) {
    return this.store.get(`text:${conv}:${seq}`);
  }

  async keep(conv, seq, text) {
    await this.store.put(`text:${conv}:${seq}`, text);
    this.dispatchEvent(new CustomEvent("text", { detail: { conv, seq, text } }));
  }

  // createGroup makes the MLS group of a new encrypted conversation and
  // adds every device of each of its other members, then this user's
  // other devices.
  createGroup(conv, members) {
    return this.serial(async () => {
      const kp = await mls.generateKeyPackage(this.credential(), mls.defaultCapabilities(), lifetime(), [], this.impl);
      await this.setGroup(conv, await mls.createGroup(utf8.encode(conv), kp.publicPackage, kp.privatePackage, [], this.impl));
      const adds = await this.claim([...members, this.me]);
      if (adds.length > 0) await this.commit(conv, adds);
      return adds.length;
    });
  }

  // add adds every device of users (new members, or members' new
  // devices) to an encrypted conversation by a commit.
  add(conv, users) {
    return this.serial(async () => {
      const state = await this.group(conv);
      if (!state) throw new Error("this device is not in the conversation's group");
      const have = new Set(state.ratchetTree.filter((n) => n?.nodeType === "leaf").map((n) => fromUtf8.decode(n.leaf.credential.identity)));
      const adds = (await this.claim(users)).filter((a) => !have.has(`${a.user}/${a.device}`));
      if (adds.length === 0) throw new Error(`no device of ${users.join(", ")} to add`);
      await this.commit(conv, adds);
    });
  }

  // remove removes every device of user from an encrypted conversation
  // by a commit: the server then removes the member.
  remove(conv, user) {
    return this.serial(async () => {
      const state = await this.group(conv);
      const removes = [];
      state.ratchetTree.forEach((n, i) => {
        const id = n?.nodeType === "leaf" ? fromUtf8.decode(n.leaf.credential.identity) : "";
        if (id.startsWith(`${user}/`)) removes.push({ leaf: i / 2, user, device: id.slice(user.length + 1) });
      });
      await this.commit(conv, [], removes);
    });
  }

  // claim claims a key package of each device of users, but this one.
  async claim(users) {
    const adds = [];
    for (const user of new Set(users)) {
      const claim = await this.api.request("GET", `/v1/users/${encodeURIComponent(user)}/key-packages`);
      for (const c of claim.key_packages) {
        if (user === this.me && c.device_id === this.device) continue;
        const [msg] = mls.decodeMlsMessage(unb64(c.key_package), 0);
        adds.push({ user, device: c.device_id, keyPackage: msg.keyPackage });
      }
    }
    return adds;
  }

  // commit commits adds and removes (and every proposal received in the
  // epoch); proposed are devices whose removal was proposed already,
  // declared to the server with the others.
  async commit(conv, adds, removes = [], proposed = []) {
    const state = await this.group(conv);
    const res = await mls.createCommit(
      { state, cipherSuite: this.impl },
      {
        extraProposals: [
          ...adds.map((a) => ({ proposalType: "add", add: { keyPackage: a.keyPackage } })),
          ...removes.map((r) => ({ proposalType: "remove", remove: { removed: r.leaf } })),
        ],
        ratchetTreeExtension: true,
      },
    );
    const commit = b64(mls.encodeMlsMessage(res.commit));
    this.pending.set(commit, res.newState);
    const body = {
      device_id: this.device,
      epoch: Number(state.groupContext.epoch),
      commit,
      add_devices: adds.map((a) => ({ user_id: a.user, device_id: a.device })),
      remove_devices: [...removes, ...proposed].map((r) => ({ user_id: r.user, device_id: r.device })),
    };
    if (res.welcome) body.welcome = b64(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome }));
    try {
      await this.api.request("POST", `/v1/conversations/${encodeURIComponent(conv)}/mls/commits`, body);
    } catch (err) {
      this.pending.delete(commit);
      throw err;
    }
  }

  // send encrypts text for the group and appends it.
  send(conv, text) {
    return this.serial(async () => {
      const state = await this.group(conv);
      if (!state) throw new Error("this device is not in the conversation's group");
      const res = await mls.createApplicationMessage(state, utf8.encode(text), this.impl);
      await this.setGroup(conv, res.newState);
      const out = await this.api.request("POST", `/v1/conversations/${encodeURIComponent(conv)}/mls/messages`, {
        device_id: this.device,
        epoch: Number(state.groupContext.epoch),
        ciphertext: b64(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage })),
      });
      await this.keep(conv, out.seq, text);
      return out;
    });
  }

  // handle applies a live event of an encrypted conversation, in order,
  // first filling from history what this device missed (its page was
  // closed). If history does not have the missed events yet, the event
  // waits: a catch-up a second later applies it with them.
  handle(ev) {
    return this.serial(async () => {
      if (await this.fill(ev.conversation_id, ev.seq)) await this.apply(ev);
      else setTimeout(() => this.catchUp(ev.conversation_id).catch(() => {}), 1000);
    });
  }

  async apply(ev) {
    const seen = (await this.store.get(`seq:${ev.conversation_id}`)) ?? -1;
    if (ev.seq <= seen) return;
    try {
      if (ev.event_type === "chat.mls.committed.v1") await this.onCommit(ev.conversation_id, ev.data);
      if (ev.event_type === "chat.mls.message.sent.v1") await this.onMessage(ev.conversation_id, ev.seq, ev.data);
      if (ev.event_type === "chat.mls.proposed.v1") await this.onProposal(ev.conversation_id, ev.data);
    } finally {
      await this.store.put(`seq:${ev.conversation_id}`, ev.seq);
    }
  }

  // catchUp applies, in order, the events of conv this device has not
  // applied yet, read from history with this device's id (so the welcome
  // that adds it is there): a device added while its page was closed
  // joins this way, and reads what was sent since.
  catchUp(conv) {
    return this.serial(() => this.fill(conv, Infinity));
  }

  // fill applies the events of conv after the last one applied and
  // before seq before, from history; it reports whether none is missing.
  async fill(conv, before) {
    for (;;) {
      const after = (await this.store.get(`seq:${conv}`)) ?? -1;
      if (Math.max(after, 0) + 1 >= before) return true;
      // (The creation, seq 0, carries nothing for MLS: history from 1.)
      const q = new URLSearchParams({ after: String(Math.max(after, 0)), limit: "200", device_id: this.device });
      const page = await this.api.request("GET", `/v1/conversations/${encodeURIComponent(conv)}/history?${q}`);
      const events = page.events.filter((ev) => ev.seq < before);
      for (const ev of events) await this.apply({ ...ev, conversation_id: conv });
      if (events.length < page.events.length) return true;
      if (!page.has_more || page.events.length === 0) return before === Infinity;
    }
  }

  mine(user, device) {
    return user === this.me && device === this.device;
  }

  async onCommit(conv, e) {
    if (this.mine(e.user_id, e.device_id)) {
      const next = this.pending.get(e.commit);
      if (next) await this.setGroup(conv, next);
      this.pending.clear();
      return;
    }
    this.pending.clear();
    const state = await this.group(conv);
    if (!state) {
      if (e.welcome && (e.added_devices || []).some((d) => this.mine(d.user_id, d.device_id))) await this.join(conv, e.welcome);
      return;
    }
    if ((e.removed_devices || []).some((d) => this.mine(d.user_id, d.device_id))) return;
    const [msg] = mls.decodeMlsMessage(unb64(e.commit), 0);
    const r = await mls.processPrivateMessage(state, msg.privateMessage, mls.emptyPskIndex, this.impl);
    await this.setGroup(conv, r.newState);
  }

  async join(conv, welcome) {
    const [msg] = mls.decodeMlsMessage(unb64(welcome), 0);
    for (const kp of this.keyPackages) {
      const ref = await makeKeyPackageRef(kp.publicPackage, this.impl.hash);
      if (msg.welcome.secrets.some((s) => same(s.newMember, ref))) {
        await this.setGroup(conv, await mls.joinGroup(msg.welcome, kp.publicPackage, kp.privatePackage, mls.emptyPskIndex, this.impl));
        this.topUp().catch(() => {}); // a key package was used up
        return;
      }
    }
  }

  async onMessage(conv, seq, e) {
    if (this.mine(e.sender_id, e.device_id)) return; // kept when sent
    const state = await this.group(conv);
    if (!state) return;
    const [msg] = mls.decodeMlsMessage(unb64(e.ciphertext), 0);
    const r = await mls.processPrivateMessage(state, msg.privateMessage, mls.emptyPskIndex, this.impl);
    await this.setGroup(conv, r.newState);
    if (r.kind === "applicationMessage") await this.keep(conv, seq, fromUtf8.decode(r.message));
  }

  // proposeLeave proposes the removal of this device as its user's
  // departure; another member's device commits it (onProposal).
  proposeLeave(conv) {
    return this.serial(async () => {
      const state = await this.group(conv);
      if (!state) throw new Error("this device is not in the conversation's group");
      const res = await mls.createProposal(state, false, { proposalType: "remove", remove: { removed: state.privatePath.leafIndex } }, this.impl);
      await this.api.request("POST", `/v1/conversations/${encodeURIComponent(conv)}/mls/proposals`, {
        device_id: this.device,
        epoch: Number(state.groupContext.epoch),
        proposal: b64(mls.encodeMlsMessage(res.message)),
        leave: true,
      });
      await this.setGroup(conv, res.newState);
    });
  }

  // onProposal applies another device's proposal. A leave is committed
  // by the first device of another member to get to it — with every
  // device of the leaving user removed; the others' commits of the same
  // epoch are refused as stale and dropped.
  async onProposal(conv, e) {
    if (this.mine(e.user_id, e.device_id)) return; // applied when made
    const state = await this.group(conv);
    if (!state) return;
    const [msg] = mls.decodeMlsMessage(unb64(e.proposal), 0);
    const r = await mls.processPrivateMessage(state, msg.privateMessage, mls.emptyPskIndex, this.impl);
    await this.setGroup(conv, r.newState);
    if (!e.leave || e.user_id === this.me) return;
    const leaves = [];
    r.newState.ratchetTree.forEach((n, i) => {
      const id = n?.nodeType === "leaf" ? fromUtf8.decode(n.leaf.credential.identity) : "";
      if (id.startsWith(`${e.user_id}/`)) leaves.push({ leaf: i / 2, user: e.user_id, device: id.slice(e.user_id.length + 1) });
    });
    // The proposer's own leaf is removed by its proposal (a reference);
    // its other devices by proposals of this commit.
    const proposerLeaf = leaves.find((l) => l.device === e.device_id);
    const extra = leaves.filter((l) => l !== proposerLeaf);
    setTimeout(() => {
      this.serial(async () => {
        const st = await this.group(conv);
        if (Number(st.groupContext.epoch) !== e.epoch) return; // committed already
        await this.commit(conv, [], extra, proposerLeaf ? [proposerLeaf] : []);
      }).catch(() => {}); // another device's commit came first
    }, 0);
  }

  // devices returns the group's devices with their safety numbers, and
  // whether a device's number changed since this device first saw it
  // (in any group): a new key under a known identity, which the user
  // should check again.
  async devices(conv) {
    const state = await this.group(conv);
    if (!state) return [];
    const out = [];
    for (const n of state.ratchetTree) {
      if (n?.nodeType !== "leaf") continue;
      const identity = fromUtf8.decode(n.leaf.credential.identity);
      const fp = await fingerprint(n.leaf.credential.identity, n.leaf.signaturePublicKey);
      const known = await this.store.get(`fingerprint:${identity}`);
      if (known === undefined) await this.store.put(`fingerprint:${identity}`, fp);
      out.push({ identity, fingerprint: fp, changed: known !== undefined && known !== fp });
    }
    return out;
  }
}
