// An MLS device talking to a real Parley: ts-mls for the cryptography,
// Parley's HTTP API for key packages and MLS commands, its WebSocket for
// events and resume. Every change of a device's MLS state — processing an
// event, making a commit or a message — runs on one promise chain, in
// the order the log gives, so a device's groups follow the log exactly.

import {
  createApplicationMessage,
  createCommit,
  createProposal,
  createGroup,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processPrivateMessage,
} from "ts-mls";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";

export const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
export const b64 = (bytes) => Buffer.from(bytes).toString("base64");
export const unb64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const sameBytes = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

let commandCounter = 0;
const commandID = (prefix) => `${prefix}-${process.pid}-${++commandCounter}`;

// lifetime is a key package's validity: from an hour ago (clock skew)
// for a week, within Parley's 90-day limit.
function lifetime() {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return { notBefore: now - 3600n, notAfter: now + 7n * 86400n };
}

export async function suite() {
  return getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
}

// Device is one MLS client: a user's device with its key packages, its
// socket and its groups (by conversation id).
export class Device {
  constructor({ base, user, device, token, impl }) {
    Object.assign(this, { base, user, device, token, impl });
    this.id = `${user}/${device}`;
    this.keyPackages = []; // {publicPackage, privatePackage}
    this.groups = new Map(); // conversation id -> ClientState
    this.lastSeq = new Map(); // conversation id -> last seq processed
    this.pending = new Map(); // base64 commit -> ClientState after it
    this.plaintexts = new Map(); // conversation id -> [{seq, from, text}]
    this.removedFrom = new Set(); // conversations a commit removed us from
    this.foreignWelcomes = 0; // welcomes that reached us but were not ours
    this.welcomed = 0;
    this.proposals = 0; // proposals of other devices applied
    this.errors = [];
    this.chain = Promise.resolve();
    this.waiters = [];
    this.frames = [];
  }

  credential() {
    return { credentialType: "basic", identity: utf8.encode(this.id) };
  }

  // serial runs fn after every earlier change of this device's state.
  serial(fn) {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => {});
    return p;
  }

  async api(method, path, body) {
    const resp = await fetch(this.base + path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = { raw: text };
    }
    return { status: resp.status, body: json };
  }

  // publish makes n one-time key packages and a last-resort one and
  // publishes them.
  async publish(n) {
    const made = [];
    for (let i = 0; i <= n; i++) {
      made.push(await generateKeyPackage(this.credential(), defaultCapabilities(), lifetime(), [], this.impl));
    }
    this.keyPackages.push(...made);
    const encode = (kp) => b64(encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }));
    const r = await this.api("POST", `/v1/devices/${this.device}/key-packages`, {
      key_packages: made.slice(0, n).map(encode),
      last_resort: encode(made[n]),
    });
    if (r.status !== 200) throw new Error(`${this.id}: publishing key packages: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // claim claims one key package of each of user's devices.
  async claim(user) {
    const r = await this.api("GET", `/v1/users/${user}/key-packages`);
    if (r.status !== 200) throw new Error(`claiming ${user}'s key packages: ${r.status}`);
    return r.body.key_packages.map((c) => {
      const [msg] = decodeMlsMessage(unb64(c.key_package), 0);
      if (msg.wireformat !== "mls_key_package") throw new Error("claimed something else than a key package");
      return { user, device: c.device_id, keyPackage: msg.keyPackage, lastResort: c.last_resort };
    });
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.base.replace(/^http/, "ws")}/v1/ws?device_id=${this.device}`);
      this.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: "auth", id: "auth", token: this.token, device_id: this.device }));
      ws.onerror = (e) => reject(new Error(`${this.id}: socket error ${e.message ?? ""}`));
      ws.onmessage = (m) => {
        const f = JSON.parse(m.data);
        this.frames.push(f);
        if (f.type === "auth_ok") resolve();
        if (f.type === "event") this.serial(() => this.onEvent(f)).catch((err) => this.fail(err));
        if (f.type === "resumed" || f.type === "gap") this.notify();
      };
    });
  }

  disconnect() {
    return new Promise((resolve) => {
      if (!this.ws || this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.onclose = () => resolve();
      this.ws.close(1000, "going offline");
    });
  }

  // resume asks for every event of conv after the last one processed.
  resume(conv) {
    const id = commandID("resume");
    this.ws.send(JSON.stringify({ type: "resume", id, conversations: { [conv]: this.lastSeq.get(conv) ?? 0 } }));
    return this.until(() => this.frames.some((f) => f.type === "resumed" && f.id === id), "resumed");
  }

  fail(err) {
    this.errors.push(err);
    this.notify();
  }

  notify() {
    for (const w of this.waiters.slice()) w();
  }

  // until resolves once cond() holds after an event, or rejects after
  // timeoutMs.
  until(cond, what, timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.errors.length) {
          done();
          reject(this.errors[0]);
        } else if (cond()) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        const last = this.frames.slice(-4).map((f) => `${f.type} ${f.event_type ?? f.code ?? ""} ${f.seq ?? ""}`);
        reject(new Error(`${this.id}: timed out waiting for ${what}; last frames: ${last.join("; ")}; last seqs ${JSON.stringify([...this.lastSeq])}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  epoch(conv) {
    const st = this.groups.get(conv);
    return st === undefined ? undefined : Number(st.groupContext.epoch);
  }

  texts(conv) {
    return (this.plaintexts.get(conv) ?? []).map((p) => p.text);
  }

  async onEvent(f) {
    const conv = f.conversation_id;
    if (f.seq <= (this.lastSeq.get(conv) ?? -1)) return; // a resume's overlap
    this.lastSeq.set(conv, f.seq);
    const e = f.data;
    switch (f.event_type) {
      case "chat.mls.committed.v1":
        await this.onCommit(conv, e);
        break;
      case "chat.mls.message.sent.v1":
        await this.onMessage(conv, f.seq, e);
        break;
      case "chat.mls.proposed.v1":
        await this.onProposal(conv, e);
        break;
    }
    this.notify();
  }

  isMe(user, device) {
    return user === this.user && device === this.device;
  }

  async onCommit(conv, e) {
    if (this.isMe(e.user_id, e.device_id)) {
      // Our own commit won: adopt the state it makes.
      const next = this.pending.get(e.commit);
      if (!next) throw new Error(`${this.id}: our commit came back but we made no such commit`);
      this.groups.set(conv, next);
      this.pending.clear();
      return;
    }
    this.pending.clear(); // another commit won this epoch: ours, if any, is stale
    const addsMe = (e.added_devices ?? []).some((d) => this.isMe(d.user_id, d.device_id));
    if (e.welcome && !addsMe) this.foreignWelcomes++;
    if (!this.groups.has(conv)) {
      if (addsMe) await this.join(conv, e.welcome);
      return;
    }
    if ((e.removed_devices ?? []).some((d) => this.isMe(d.user_id, d.device_id))) {
      // Removed: keep the last state, as an attacker who was a member would.
      this.removedFrom.add(conv);
      return;
    }
    const [msg] = decodeMlsMessage(unb64(e.commit), 0);
    const r = await processPrivateMessage(this.groups.get(conv), msg.privateMessage, emptyPskIndex, this.impl);
    this.groups.set(conv, r.newState);
  }

  async join(conv, welcome) {
    if (!welcome) throw new Error(`${this.id}: added without a welcome`);
    const [msg] = decodeMlsMessage(unb64(welcome), 0);
    for (const kp of this.keyPackages) {
      const ref = await makeKeyPackageRef(kp.publicPackage, this.impl.hash);
      if (msg.welcome.secrets.some((s) => sameBytes(s.newMember, ref))) {
        this.groups.set(conv, await joinGroup(msg.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, this.impl));
        this.welcomed++;
        return;
      }
    }
    throw new Error(`${this.id}: a welcome for none of our key packages`);
  }

  async onMessage(conv, seq, e) {
    if (this.isMe(e.sender_id, e.device_id)) return; // we know what we sent
    const state = this.groups.get(conv);
    if (!state || this.removedFrom.has(conv)) return;
    const [msg] = decodeMlsMessage(unb64(e.ciphertext), 0);
    const r = await processPrivateMessage(state, msg.privateMessage, emptyPskIndex, this.impl);
    this.groups.set(conv, r.newState);
    if (r.kind !== "applicationMessage") throw new Error(`${this.id}: seq ${seq} is no application message`);
    this.record(conv, seq, `${e.sender_id}/${e.device_id}`, fromUtf8.decode(r.message));
  }

  async onProposal(conv, e) {
    if (this.isMe(e.user_id, e.device_id)) return; // applied when made
    const state = this.groups.get(conv);
    if (!state || this.removedFrom.has(conv)) return;
    const [msg] = decodeMlsMessage(unb64(e.proposal), 0);
    const r = await processPrivateMessage(state, msg.privateMessage, emptyPskIndex, this.impl);
    this.groups.set(conv, r.newState);
    this.proposals++;
  }

  // proposeLeave proposes the removal of this device, as part of its
  // user leaving: the server lets any member commit it.
  proposeLeave(conv) {
    return this.serial(async () => {
      const state = this.groups.get(conv);
      const res = await createProposal(state, false, { proposalType: "remove", remove: { removed: this.leafOf(state, this.user, this.device) } }, this.impl);
      const r = await this.api("POST", `/v1/conversations/${conv}/mls/proposals`, {
        command_id: commandID("leave"),
        device_id: this.device,
        epoch: Number(state.groupContext.epoch),
        proposal: b64(encodeMlsMessage(res.message)),
        leave: true,
      });
      if (r.status === 201) this.groups.set(conv, res.newState);
      return r;
    });
  }

  record(conv, seq, from, text) {
    if (!this.plaintexts.has(conv)) this.plaintexts.set(conv, []);
    this.plaintexts.get(conv).push({ seq, from, text });
  }

  // createGroup creates an encrypted group conversation whose MLS group
  // this device makes.
  createGroup(title, members = []) {
    return this.serial(async () => {
      const r = await this.api("POST", "/v1/conversations", { kind: "group", title, members, encrypted: true, device_id: this.device, command_id: commandID("create") });
      if (r.status !== 201) throw new Error(`creating: ${r.status} ${JSON.stringify(r.body)}`);
      const conv = r.body.conversation_id;
      const kp = await generateKeyPackage(this.credential(), defaultCapabilities(), lifetime(), [], this.impl);
      this.groups.set(conv, await createGroup(utf8.encode(conv), kp.publicPackage, kp.privatePackage, [], this.impl));
      return { conv, body: r.body };
    });
  }

  leafOf(state, user, device) {
    const id = `${user}/${device}`;
    for (let i = 0; i < state.ratchetTree.length; i += 2) {
      const n = state.ratchetTree[i];
      if (n && n.nodeType === "leaf" && fromUtf8.decode(n.leaf.credential.identity) === id) return i / 2;
    }
    throw new Error(`${id} is not in the group`);
  }

  // commit makes a commit adding the claimed key packages and removing
  // the devices given, and appends it. The new state is adopted when
  // the commit comes back in the log, not when it is accepted.
  // proposed are devices whose removal was proposed already: the commit
  // includes those proposals (by reference) and declares the removals.
  commit(conv, { add = [], remove = [], proposed = [] } = {}) {
    return this.serial(async () => {
      const state = this.groups.get(conv);
      const proposals = [
        ...add.map((a) => ({ proposalType: "add", add: { keyPackage: a.keyPackage } })),
        ...remove.map((d) => ({ proposalType: "remove", remove: { removed: this.leafOf(state, d.user, d.device) } })),
      ];
      remove = [...remove, ...proposed];
      const res = await createCommit({ state, cipherSuite: this.impl }, { extraProposals: proposals, ratchetTreeExtension: true });
      const commit = b64(encodeMlsMessage(res.commit));
      this.pending.set(commit, res.newState);
      const body = {
        command_id: commandID("commit"),
        device_id: this.device,
        epoch: Number(state.groupContext.epoch),
        commit,
        add_devices: add.map((a) => ({ user_id: a.user, device_id: a.device })),
        remove_devices: remove.map((d) => ({ user_id: d.user, device_id: d.device })),
      };
      if (res.welcome) body.welcome = b64(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome }));
      const r = await this.api("POST", `/v1/conversations/${conv}/mls/commits`, body);
      if (r.status !== 201) this.pending.delete(commit);
      return r;
    });
  }

  // send encrypts text for the group and appends it; it returns the
  // HTTP answer and the ciphertext.
  send(conv, text) {
    return this.serial(async () => {
      const state = this.groups.get(conv);
      const res = await createApplicationMessage(state, utf8.encode(text), this.impl);
      this.groups.set(conv, res.newState);
      const ciphertext = b64(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage }));
      const r = await this.api("POST", `/v1/conversations/${conv}/mls/messages`, {
        command_id: commandID("msg"),
        device_id: this.device,
        epoch: Number(state.groupContext.epoch),
        ciphertext,
      });
      if (r.status === 201) this.record(conv, r.body.seq, this.id, text);
      return { ...r, ciphertext };
    });
  }

  // tryDecrypt tries to read ciphertext with the state this device has
  // of conv (a removed device keeps its last one).
  async tryDecrypt(conv, ciphertext) {
    const [msg] = decodeMlsMessage(unb64(ciphertext), 0);
    const r = await processPrivateMessage(this.groups.get(conv), msg.privateMessage, emptyPskIndex, this.impl);
    return fromUtf8.decode(r.message);
  }
}
