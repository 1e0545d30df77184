// Parley's client protocol over the WebSocket (GET /v1/ws), as every
// client should speak it. This file is the reference for client authors
// (README, "Writing a client"); it knows nothing of the page.
//
// What it guarantees the application:
//
//   - Each conversation's events are handed over in seq order, each
//     exactly once, across reconnects: the connection keeps a cursor per
//     conversation (the last seq handed over), sends the cursors in a
//     `resume` frame after every (re)connect, drops what it already has,
//     holds events that arrive ahead of a missing one, and fetches over
//     HTTP whatever the server says it will not send (a `gap` frame).
//   - Commands (send, edit, delete, react, unreact) carry a command id,
//     the idempotency key. They wait in an outbox until their `ack`; a
//     command whose socket dropped, or that was refused with a retryable
//     error, is sent again with the same command id, so the server
//     appends it once however many times it travels.
//   - It reconnects by itself, with exponential backoff and jitter, on a
//     dropped socket and on the close codes that mean "reconnect and
//     resume" (1001, 1006, 4000-4499); it stops on 4500-4999 (fix the
//     token first) and says so.
//
// Events it dispatches (EventTarget): "state" (detail: the State),
// "event" (an event frame, in order), "receipt", "typing", "presence"
// (the server's frames), "authenticated" (the auth_ok frame), "resumed",
// "unresumed" (detail: a conversation the server refused to resume),
// "outbox" (the commands waiting changed), "signedout" (detail: the close
// code and reason).

// State is the connection's state.
export const State = Object.freeze({
  CONNECTING: "connecting",
  ONLINE: "online",
  OFFLINE: "offline",
  SIGNED_OUT: "signed-out",
});

// newID returns a random id (32 hex digits) for commands and devices.
// crypto.getRandomValues works on plain-http origins too, unlike
// crypto.randomUUID.
export function newID() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// Close codes that mean "do not reconnect until something is fixed".
const terminal = (code) => code >= 4500 && code <= 4999;

export class Connection extends EventTarget {
  // url: the WebSocket URL (ws(s)://host/v1/ws). token: the bearer JWT,
  // sent in the first frame (browsers cannot set headers on a
  // WebSocket; never put it in the URL). deviceId: this browser's
  // device id (presence). fetchAfter(conversation, afterSeq): resolves
  // to {events, has_more} from GET /v1/conversations/{id}/history?after=,
  // used to fill gaps. prepare(userId): awaited after each auth_ok and
  // before the resume, where the application may add cursors (track).
  constructor({ url, token, deviceId, fetchAfter, prepare, maxDelay = 10000, pingEvery = 15000 }) {
    super();
    this.url = url;
    this.token = token;
    this.deviceId = deviceId;
    this.fetchAfter = fetchAfter;
    this.prepare = prepare || (async () => {});
    this.maxDelay = maxDelay;
    this.pingEvery = pingEvery;
    this.state = State.OFFLINE;
    this.userId = "";
    // cursors: conversation id -> the last seq handed to the application.
    this.cursors = new Map();
    // held: conversation id -> Map(seq -> event frame) that arrived ahead
    // of a missing seq, handed over once the missing ones are in.
    this.held = new Map();
    this.filling = new Set(); // conversations being filled over HTTP
    // outbox: command id -> {frame, resolve, reject, timer}, in the order
    // the application issued them (a Map keeps insertion order), so that
    // a resend keeps a sender's order.
    this.outbox = new Map();
    // inflight: request id -> command id, for this socket only.
    this.inflight = new Map();
    this.watching = [];
    this.attempt = 0;
    this.requestSeq = 0;
    this.ws = null;
    this.stopped = false;
    this.everOnline = false;
    this.refusals = 0; // 4500 closes in a row after having been online
  }

  // start connects; call it once.
  start() {
    this.stopped = false;
    this.connect();
    this.onBrowserOnline = () => {
      if (this.state === State.OFFLINE) this.reconnectNow();
    };
    window.addEventListener("online", this.onBrowserOnline);
  }

  // stop closes the socket for good (signing out).
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    window.removeEventListener("online", this.onBrowserOnline);
    if (this.ws) this.ws.close(1000, "signed out");
    this.setState(State.SIGNED_OUT);
  }

  // track sets a conversation's cursor unless it has one: the seq the
  // application already has (from the conversation list), so that a
  // resume sends only what came after it.
  track(conversation, seq) {
    if (!this.cursors.has(conversation)) this.cursors.set(conversation, seq);
  }

  // rewind sets a conversation's cursor back to seq, where the server's
  // log now ends: it lost what came after (README, "A log that lost
  // records"), and new events take those seqs. What comes after seq is
  // fetched; live events follow it.
  rewind(conversation, seq) {
    this.cursors.set(conversation, seq);
    this.held.delete(conversation);
    this.fill(conversation);
  }

  // forget drops a conversation the user has left.
  forget(conversation) {
    this.cursors.delete(conversation);
    this.held.delete(conversation);
  }

  // cursor returns the last seq handed over of a conversation, or
  // undefined.
  cursor(conversation) {
    return this.cursors.get(conversation);
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.dispatchEvent(new CustomEvent("state", { detail: s }));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- the socket's life -------------------------------------------------

  connect() {
    if (this.stopped) return;
    this.setState(State.CONNECTING);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    // A connection attempt that hangs (a dead network) is given up on.
    const openTimer = setTimeout(() => ws.close(), 10000);
    ws.onopen = () => {
      clearTimeout(openTimer);
      this.raw({ type: "auth", id: "auth", token: this.token, device_id: this.deviceId });
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onFrame(f).catch((err) => console.error("parley: handling a frame", err));
    };
    ws.onclose = (e) => {
      clearTimeout(openTimer);
      if (ws === this.ws) this.onClose(e.code, e.reason);
    };
  }

  onClose(code, reason) {
    clearInterval(this.pingTimer);
    this.inflight.clear(); // request ids belong to the socket
    this.ws = null;
    if (this.stopped) return;
    // A token that worked before may be refused for a moment after a
    // server restart: with an identity provider, until the server has
    // fetched its keys again (its /readyz says "oidc" meanwhile). Try a
    // few more times before giving up on it; an expired token (4501)
    // is not retried.
    if (code === 4500 && this.everOnline && this.refusals < 3) {
      this.refusals++;
    } else if (terminal(code)) {
      this.setState(State.SIGNED_OUT);
      this.emit("signedout", { code, reason });
      return;
    }
    this.setState(State.OFFLINE);
    // 1013: the user has too many sockets open; wait longer.
    const base = code === 1013 ? 10000 : Math.min(this.maxDelay, 500 * 2 ** this.attempt);
    this.attempt++;
    const delay = base / 2 + (Math.random() * base) / 2; // jitter: no herd after a restart
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // reconnectNow skips the backoff's wait (the browser came back online).
  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  nextID(prefix) {
    return prefix + ++this.requestSeq;
  }

  // --- frames from the server ----------------------------------------------

  async onFrame(f) {
    switch (f.type) {
      case "auth_ok":
        this.emit("authenticated", f);
        if (f.id !== "auth") break; // a fresh token on an open socket
        this.userId = f.user_id;
        await this.prepare(f.user_id);
        this.sendResume();
        break;
      case "resumed":
        this.onResumed(f);
        break;
      case "event":
        this.deliver(f);
        break;
      case "gap":
        // The server will not send [from_seq, to_seq]: fetch it.
        this.fill(f.conversation_id);
        break;
      case "ack":
        this.settle(f.id, null, f);
        break;
      case "error":
        this.onError(f);
        break;
      case "pong":
        this.alive = true;
        break;
      case "receipt":
        this.emit("receipt", f);
        break;
      case "user_typing":
        this.emit("typing", f);
        break;
      case "presence":
        this.emit("presence", f);
        break;
    }
  }

  // sendResume asks for every conversation's events after its cursor.
  // The answer is those events, then "resumed"; live events follow.
  sendResume() {
    if (this.cursors.size === 0) {
      this.onResumed();
      return;
    }
    this.resumeSent = [...this.cursors.keys()];
    this.raw({ type: "resume", id: this.nextID("resume-"), conversations: Object.fromEntries(this.cursors) });
  }

  // onResumed: caught up. A conversation the resume asked for and the
  // answer leaves out was refused (an error frame said why, without
  // naming it): most likely the user was removed while away, and a
  // refused resume does not deliver the removal. Say so ("unresumed"),
  // so the application can ask.
  onResumed(f) {
    this.everOnline = true;
    this.refusals = 0;
    if (f && f.conversations) {
      for (const c of this.resumeSent || []) if (!(c in f.conversations)) this.emit("unresumed", c);
    }
    this.resumeSent = null;
    this.attempt = 0;
    this.setState(State.ONLINE);
    this.startPing();
    if (this.watching.length > 0) {
      this.raw({ type: "presence_watch", id: this.nextID("watch-"), user_ids: this.watching });
    }
    // Everything still in the outbox goes again, in order, with its
    // command id: the server appends each command once, and answers a
    // repeat with the original seq and duplicate: true.
    for (const [commandID, entry] of this.outbox) this.transmit(commandID, entry);
    this.emit("resumed", {});
    this.emit("outbox", this.outbox.size);
  }

  // A socket that answers no ping is dead even if TCP has not noticed
  // (a server killed, a network cut): close it, and reconnect.
  startPing() {
    clearInterval(this.pingTimer);
    this.alive = true;
    this.pingTimer = setInterval(() => {
      if (!this.alive) {
        if (this.ws) this.ws.close(4000, "no pong");
        return;
      }
      this.alive = false;
      this.raw({ type: "ping", id: this.nextID("ping-") });
    }, this.pingEvery);
  }

  // deliver hands an event over in seq order, exactly once.
  deliver(f) {
    const c = f.conversation_id;
    const cur = this.cursors.get(c);
    if (cur !== undefined && f.seq <= cur) return; // already handed over
    if (cur !== undefined && f.seq > cur + 1) {
      // Ahead of a missing event: the server sends the missing ones
      // first (resume backfill), or a gap frame. Hold it; if nothing
      // fills the hole soon, fetch it.
      if (!this.held.has(c)) this.held.set(c, new Map());
      this.held.get(c).set(f.seq, f);
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => {
        for (const conv of this.held.keys()) this.fill(conv);
      }, 3000);
      return;
    }
    // The next one, or the first of a conversation new to us.
    this.handOver(f);
    const held = this.held.get(c);
    if (!held) return;
    for (let next = f.seq + 1; held.has(next); next++) {
      const h = held.get(next);
      held.delete(next);
      this.handOver(h);
    }
    for (const seq of held.keys()) if (seq <= this.cursors.get(c)) held.delete(seq);
    if (held.size === 0) this.held.delete(c);
  }

  handOver(f) {
    this.cursors.set(f.conversation_id, f.seq);
    this.emit("event", f);
  }

  // fill fetches a conversation's events after its cursor over HTTP and
  // hands them over, until it reaches what it holds or history's end.
  async fill(conversation) {
    if (this.filling.has(conversation)) return;
    this.filling.add(conversation);
    try {
      for (let i = 0; i < 50; i++) {
        const cur = this.cursors.get(conversation) ?? 0;
        const page = await this.fetchAfter(conversation, cur);
        for (const ev of page.events) this.deliver({ type: "event", ...ev, conversation_id: conversation });
        const held = this.held.get(conversation);
        if (!page.has_more && (!held || held.size === 0)) return;
        if (page.events.length === 0) {
          // History has not caught up with the log yet: try again soon.
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } catch (err) {
      console.error("parley: filling a gap", err);
    } finally {
      this.filling.delete(conversation);
    }
  }

  onError(f) {
    const commandID = this.inflight.get(f.id);
    if (commandID === undefined) {
      if (f.id && f.id.startsWith("resume-") && f.code === "not_member") {
        // We were removed while away; the departure event came before.
        return;
      }
      if (f.id && f.id.startsWith("resume-") && f.code === "invalid_request") {
        // A cursor beyond the conversation's last seq: the server's log
        // lost what came after. "unresumed" follows, for the application
        // to ask where the conversation ends (rewind).
        return;
      }
      if (f.id === "auth") return; // the close 4500/4501 follows
      this.emit("servererror", f);
      return;
    }
    this.inflight.delete(f.id);
    const entry = this.outbox.get(commandID);
    if (!entry) return;
    if (f.retryable) {
      // timeout, overloaded, rate_limited, unavailable: nothing or the
      // same thing was appended; send the same command id again later.
      const wait = f.retry_after_ms || 1000;
      entry.timer = setTimeout(() => this.transmit(commandID, entry), wait);
      return;
    }
    this.settle(null, commandID, null, f);
  }

  // settle resolves (ack) or rejects (error) a command, found by its
  // request id or its command id.
  settle(requestID, commandID, ack, err) {
    if (commandID === null) {
      commandID = this.inflight.get(requestID);
      this.inflight.delete(requestID);
    }
    const entry = this.outbox.get(commandID);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.outbox.delete(commandID);
    this.emit("outbox", this.outbox.size);
    if (err) {
      const e = new Error(err.message);
      e.code = err.code;
      entry.reject(e);
    } else {
      entry.resolve(ack);
    }
  }

  // --- requests from the application -------------------------------------

  // command queues a command (type send, edit, delete, react, unreact,
  // or read) and resolves with its ack, or rejects with a non-retryable
  // error (err.code). While offline it waits in the outbox and goes when
  // the socket is back. fields.command_id, if given, is reused: pass the
  // same one to retry a command the application gave up on.
  command(type, fields) {
    const { command_id: given, ...rest } = fields;
    const commandID = given || newID();
    // A read marker has no command id (markers only move forward, so a
    // repeat changes nothing); it is kept under one key per conversation.
    const frame = type === "read" ? { type, ...rest } : { type, ...rest, command_id: commandID };
    const earlier = this.outbox.get(commandID);
    if (earlier && type === "read") {
      // A newer read marker replaces one not yet sent.
      clearTimeout(earlier.timer);
      earlier.resolve(null);
    }
    return new Promise((resolve, reject) => {
      const entry = { frame, resolve, reject, timer: null };
      this.outbox.set(commandID, entry);
      this.emit("outbox", this.outbox.size);
      if (this.state === State.ONLINE) this.transmit(commandID, entry);
    });
  }

  transmit(commandID, entry) {
    clearTimeout(entry.timer);
    for (const [rid, cid] of this.inflight) if (cid === commandID) this.inflight.delete(rid);
    const id = this.nextID("c-");
    if (this.raw({ ...entry.frame, id })) this.inflight.set(id, commandID);
  }

  // pending lists the commands not yet acknowledged, oldest first.
  pending() {
    return [...this.outbox.entries()].map(([commandID, e]) => ({ commandID, frame: e.frame }));
  }

  // typing tells the conversation's members the user is typing; it is
  // dropped while offline (nobody replays typing).
  typing(conversation) {
    if (this.state === State.ONLINE) this.raw({ type: "typing", conversation_id: conversation });
  }

  // watch follows the presence of users (at most 500), now and after
  // every reconnect.
  watch(userIds) {
    this.watching = userIds.slice(0, 500);
    if (this.state === State.ONLINE && this.watching.length > 0) {
      this.raw({ type: "presence_watch", id: this.nextID("watch-"), user_ids: this.watching });
    }
  }

  // setToken replaces the token: sent at once on an open socket (an auth
  // frame extends the socket's life), and on every reconnect.
  setToken(token) {
    this.token = token;
    if (this.state === State.ONLINE) this.raw({ type: "auth", id: this.nextID("auth-"), token, device_id: this.deviceId });
  }
}
