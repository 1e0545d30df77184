// The web client's screens: sign-in, the conversation list, a
// conversation, and the side panel (members, thread, search results).
// The protocol lives in client.js; this file only keeps the state the
// screens show and draws it.

import { Connection, State, newID } from "./client.js";
import { Api } from "./api.js";
import * as auth from "./auth.js";
import { h, $, highlighted, timeOf } from "./dom.js";
import { Upload, isThumbnailed, sizeText } from "./uploads.js";
import { setupPush } from "./push.js";
import { E2EE } from "./e2ee.js";

const MESSAGE_SENT = new Set(["chat.message.sent.v1", "chat.message.sent.v2", "chat.message.sent.v3"]);
const LOCKED = "🔒 Encrypted message"; // one this device cannot read (sent before it joined)
const MAX_FILES = 10; // files on one message (PARLEY_MAX_ATTACHMENTS' default)
const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮"];
const PAGE = 50;

// S is the client's state: who is signed in, the conversations as the
// screens show them, and what is open.
const S = {
  me: "",
  api: null,
  conn: null,
  convs: new Map(),
  current: null,
  presence: new Map(),
  replyTo: null, // seq of the message being answered
  editing: null, // seq of the message being edited
  picker: null, // seq of the message whose reaction picker is open
  panel: null, // "members" | "thread" | "search"
  lastTyping: 0,
  inboxLoaded: false,
  pushSetUp: false, // the service worker registered (push.js), once per page
  wasOnline: false,
  nodes: new Map(), // message list: key -> <li>
  uploads: new Map(), // conversation id -> the Uploads in its composer
  links: new Map(), // "conv/seq/n[/t]" -> {url, until}: presigned download URLs
  e2ee: null, // this device's MLS client (e2ee.js), once signed in
};

async function main() {
  wireStatic();
  if (location.pathname === "/auth/callback") {
    try {
      auth.saveToken(await auth.completeOIDC());
    } catch (err) {
      showSignIn(err.message);
      return;
    }
  }
  const token = auth.savedToken();
  if (token) start(token);
  else showSignIn(sessionStorage.getItem("parley.flash") || "");
  sessionStorage.removeItem("parley.flash");
}

// --- signing in -----------------------------------------------------------

async function showSignIn(message) {
  $("#app").hidden = true;
  $("#signin").hidden = false;
  const status = $("#signin-status");
  status.textContent = message || "";
  let cfg;
  try {
    cfg = await auth.signInConfig();
  } catch (err) {
    status.textContent = `The server did not answer (${err.message}). Reload to try again.`;
    return;
  }
  $("#dev-form").hidden = cfg.method !== "dev";
  $("#token-form").hidden = cfg.method !== "token";
  $("#oidc-box").hidden = cfg.method !== "oidc";
  if (cfg.method === "oidc") {
    $("#oidc-button").textContent = `Sign in with ${new URL(cfg.issuer).host}`;
    $("#oidc-button").onclick = () => auth.beginOIDC(cfg).catch((err) => (status.textContent = err.message));
    $("#oidc-button").focus();
  } else if (cfg.method === "dev") {
    $("#dev-user").focus();
  } else {
    $("#token-input").focus();
  }
}

function wireStatic() {
  $("#dev-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const token = await auth.devToken($("#dev-user").value.trim());
      auth.saveToken(token);
      start(token);
    } catch (err) {
      $("#signin-status").textContent = err.message;
    }
  });
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("#token-input").value.trim();
    auth.saveToken(token);
    start(token);
  });
  $("#signout").addEventListener("click", () => {
    S.conn?.stop();
    auth.forgetToken();
    location.replace("/");
  });
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("#search-q").value.trim());
  });
  $("#new-direct").addEventListener("click", () => openDialog("#dialog-direct"));
  $("#new-group").addEventListener("click", () => openDialog("#dialog-group"));
  for (const b of document.querySelectorAll(".dialog-cancel")) b.addEventListener("click", () => b.closest("dialog").close());
  $("#form-direct").addEventListener("submit", (e) => {
    e.preventDefault();
    $("#dialog-direct").close();
    startDirect($("#direct-user").value.trim());
  });
  $("#form-group").addEventListener("submit", (e) => {
    e.preventDefault();
    $("#dialog-group").close();
    const members = $("#group-members").value.split(/[\s,]+/).filter(Boolean);
    createGroup($("#group-title").value.trim(), members, $("#group-encrypted").checked);
  });
  $("#composer").addEventListener("submit", (e) => {
    e.preventDefault();
    submitComposer();
  });
  $("#composer-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitComposer();
    } else if (e.key === "Escape") {
      cancelContext();
    }
  });
  $("#composer-input").addEventListener("input", () => {
    const now = Date.now();
    if (S.current && now - S.lastTyping > 3000 && $("#composer-input").value) {
      S.lastTyping = now;
      S.conn.typing(S.current);
    }
  });
  $("#composer-cancel").addEventListener("click", cancelContext);
  $("#composer-attach").addEventListener("click", () => $("#composer-file").click());
  $("#composer-file").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
  $("#composer-input").addEventListener("paste", (e) => {
    if (e.clipboardData?.files.length) {
      e.preventDefault();
      addFiles(e.clipboardData.files);
    }
  });
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  $("#conversation").addEventListener("dragover", (e) => {
    if (!hasFiles(e) || $("#composer").hidden) return;
    e.preventDefault();
    $("#composer").classList.add("dropping");
  });
  $("#conversation").addEventListener("dragleave", () => $("#composer").classList.remove("dropping"));
  $("#conversation").addEventListener("drop", (e) => {
    $("#composer").classList.remove("dropping");
    if (!hasFiles(e) || $("#composer").hidden) return;
    e.preventDefault();
    addFiles(e.dataTransfer.files);
  });
  $("#members-button").addEventListener("click", () => togglePanel("members"));
  $("#block-button").addEventListener("click", () => S.current && toggleBlock(conv(S.current)));
  $("#panel").addEventListener("keydown", (e) => {
    if (e.key === "Escape") $("#panel-close").click();
  });
  $("#panel-close").addEventListener("click", () => {
    const back = S.panel === "members" ? $("#members-button") : S.panel === "search" ? $("#search-q") : $("#composer-input");
    closePanel();
    if (back && back.offsetParent !== null) back.focus(); // where the panel was opened from
  });
  $("#back").addEventListener("click", () => {
    $("#app").classList.remove("open");
    document.querySelector(`[data-conv="${CSS.escape(S.current || "")}"]`)?.focus();
  });
  $("#load-older").addEventListener("click", () => S.current && loadOlder(conv(S.current)));
  $("#messages").addEventListener("scroll", () => {
    const c = S.current && conv(S.current);
    if (!c) return;
    if ($("#messages").scrollTop < 80 && c.hasMore && c.loaded) loadOlder(c);
    if (atBottom()) markRead(c);
  });
  $("#conversations").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const buttons = [...document.querySelectorAll("#conversations button")];
    const i = buttons.indexOf(document.activeElement);
    const next = buttons[i + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      e.preventDefault();
      next.focus();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && S.current && atBottom()) markRead(conv(S.current));
  });
}

function openDialog(sel) {
  const d = $(sel);
  d.querySelector("form").reset();
  d.showModal();
}

function start(token) {
  S.api = new Api(token, () => signedOut("Your session has ended; sign in again."));
  $("#signin").hidden = true;
  $("#app").hidden = false;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  S.conn = new Connection({
    url: `${proto}//${location.host}/v1/ws`,
    token,
    deviceId: deviceId(),
    fetchAfter: (id, after) => S.api.history(id, { after, limit: 200 }),
    // Before the first resume: the conversation list, whose last seqs
    // are where the connection's cursors start.
    // After a reconnect, the list again: a conversation the user joined
    // while offline has no cursor yet, and a socket is sent only what
    // comes after it opens of a conversation it does not resume.
    prepare: async (user) => {
      S.me = user;
      $("#me").textContent = user;
      if (!S.pushSetUp) {
        S.pushSetUp = true;
        setupPush(S.api, deviceId(), $("#notify"));
      }
      if (!S.e2ee) startE2EE(user);
      try {
        await loadInbox();
        S.inboxLoaded = true;
      } catch (err) {
        toast(`Could not load the conversations: ${err.message}`);
      }
    },
  });
  S.conn.addEventListener("state", () => {
    renderBanner();
    renderSoon(); // pending messages say whether they wait for the connection
  });
  S.conn.addEventListener("outbox", () => {
    renderBanner();
    renderSoon();
  });
  S.conn.addEventListener("event", (e) => onEvent(e.detail));
  S.conn.addEventListener("receipt", (e) => onReceipt(e.detail));
  S.conn.addEventListener("typing", (e) => onTyping(e.detail));
  S.conn.addEventListener("presence", (e) => onPresence(e.detail));
  S.conn.addEventListener("resumed", () => {
    S.wasOnline = true;
    if (S.current) {
      const c = conv(S.current);
      if (atBottom()) markRead(c);
      loadReceipts(c);
    }
  });
  S.conn.addEventListener("servererror", (e) => toast(e.detail.message));
  S.conn.addEventListener("unresumed", (e) => checkMembership(conv(e.detail)));
  S.conn.addEventListener("signedout", (e) =>
    signedOut(e.detail.code === 4501 ? "Your session has expired; sign in again." : `Signed out: ${e.detail.reason || e.detail.code}`),
  );
  renderBanner();
  S.conn.start();
}

// startE2EE starts this device's MLS client: its keys in IndexedDB, its
// key packages published; what it decrypts replaces the placeholders.
function startE2EE(user) {
  S.e2ee = new E2EE(S.api, user, deviceId());
  S.e2ee.init().catch((err) => toast(`End-to-end encryption is not available here: ${err.message}`));
  S.e2ee.addEventListener("text", (e) => {
    const c = conv(e.detail.conv);
    const m = c.items.get(e.detail.seq);
    if (m && m.kind === "message") m.body = e.detail.text;
    if (c.last_message?.seq === e.detail.seq) c.last_message = { ...c.last_message, body: e.detail.text };
    renderSoon();
  });
}

function signedOut(message) {
  S.conn?.stop();
  auth.forgetToken();
  sessionStorage.setItem("parley.flash", message);
  location.replace("/");
}

function deviceId() {
  let id = localStorage.getItem("parley.device");
  if (!id) {
    id = "web-" + newID().slice(0, 12);
    localStorage.setItem("parley.device", id);
  }
  return id;
}

// --- state ------------------------------------------------------------------

function conv(id) {
  let c = S.convs.get(id);
  if (!c) {
    c = {
      id, kind: "", title: "", members: [], last_seq: 0, last_activity: "", last_message: null,
      unread: 0, read_seq: 0, archived: false, blocked_by: [], left: false,
      items: new Map(), // seq -> message or system line
      later: new Map(), // message seq -> changes that came before the message did
      pending: new Map(), // command id -> a message not yet in the log
      loaded: false, loading: null, hasMore: true, loadingOlder: null,
      peerRead: 0, peerDelivered: 0, groupReceipt: null,
      typing: new Map(), // user -> expiry (ms)
    };
    S.convs.set(id, c);
  }
  return c;
}

function upsertSummary(s) {
  const c = conv(s.conversation_id);
  c.kind = s.kind;
  c.title = s.title || "";
  c.members = s.members;
  c.archived = s.archived;
  c.blocked_by = s.blocked_by || [];
  c.encrypted = !!s.encrypted;
  if (s.last_seq >= c.last_seq) {
    c.last_seq = s.last_seq;
    c.last_activity = s.last_activity;
  }
  if (s.last_message && (!c.last_message || s.last_message.seq >= c.last_message.seq)) c.last_message = s.last_message;
  if (s.unread !== undefined) {
    c.unread = s.unread;
    c.read_seq = s.read_seq;
  }
  return c;
}

async function loadInbox() {
  let cursor;
  do {
    const page = await S.api.conversations(cursor);
    for (const s of page.conversations) {
      // What the socket has handed over is newer than the list, which is
      // a projection: the list only adds conversations not known yet.
      if (S.conn.cursor(s.conversation_id) !== undefined && S.inboxLoaded) continue;
      const c = upsertSummary(s);
      S.conn.track(s.conversation_id, s.last_seq);
      // An encrypted group this device has not followed to its end (it
      // was added, or messages came, while the page was closed).
      if (c.encrypted) S.e2ee?.catchUp(c.id).catch((err) => toast(`Could not decrypt: ${err.message}`));
    }
    cursor = page.next_cursor;
  } while (cursor);
  watchPresence();
  renderSoon();
}

const unknownFetches = new Set();

async function fetchSummary(id) {
  if (unknownFetches.has(id)) return;
  unknownFetches.add(id);
  try {
    upsertSummary(await S.api.conversation(id));
    watchPresence();
    renderSoon();
  } catch {
    // Not a member any more, or not yet readable: the events say enough.
  } finally {
    unknownFetches.delete(id);
  }
}

// onEvent applies a live (or resumed) event: in seq order, once each.
function onEvent(f) {
  const c = conv(f.conversation_id);
  if (!c.kind && f.event_type !== "chat.conversation.created.v1" && f.event_type !== "chat.conversation.created.v2") fetchSummary(c.id);
  // The events of an encrypted conversation go to this device's MLS
  // client too, in order.
  if (c.encrypted || f.event_type.startsWith("chat.mls.") || f.event_type === "chat.conversation.created.v2") {
    S.e2ee?.handle(f).catch((err) => toast(`Could not decrypt: ${err.message}`));
  }
  if (f.seq >= c.last_seq) {
    c.last_seq = f.seq;
    c.last_activity = f.time;
  }
  applyEvent(c, f, true);
  renderSoon();
}

// applyEvent folds one event into a conversation; history pages and live
// events go through it alike, so applying one twice changes nothing.
function applyEvent(c, ev, live) {
  const d = ev.data || {};
  const line = (text) => {
    if (!c.items.has(ev.seq)) c.items.set(ev.seq, { kind: "system", seq: ev.seq, text, time: ev.time });
  };
  switch (ev.event_type) {
    case "chat.conversation.created.v1":
    case "chat.conversation.created.v2":
      c.encrypted = !!d.encrypted;
      c.kind = d.kind;
      c.title = d.title || "";
      if (c.members.length === 0) c.members = d.members;
      line(d.kind === "group" ? `${d.created_by} created the group “${d.title}”` : `${d.created_by} started the conversation`);
      if (live) watchPresence();
      break;
    case "chat.message.sent.v1":
    case "chat.message.sent.v2":
    case "chat.message.sent.v3": {
      if (!c.items.has(ev.seq)) {
        const m = {
          kind: "message", seq: ev.seq, sender: d.sender_id, body: d.body, sent_at: d.sent_at,
          reply_to: d.reply_to || 0, edited_at: null, deleted: false, reactions: new Map(),
          attachments: d.attachments || [],
          thumbs: new Map(), // upload id -> {width, height} of its thumbnail
        };
        if (ev.message) {
          m.body = ev.message.body;
          m.edited_at = ev.message.edited_at || null;
          m.deleted = ev.message.deleted;
          for (const r of ev.message.reactions) m.reactions.set(r.emoji, new Set(r.users));
        }
        c.items.set(ev.seq, m);
        for (const change of c.later.get(ev.seq) || []) applyEvent(c, change, false);
        c.later.delete(ev.seq);
      }
      if (!live) break;
      c.pending.delete(d.command_id);
      c.typing.delete(d.sender_id);
      // The inbox says "📎 name" for a message with files and no text, as the server's summaries do.
      const preview = d.body || (d.attachments?.length ? `📎 ${d.attachments[0].name}` : "");
      c.last_message = { seq: ev.seq, sender_id: d.sender_id, body: preview, edited: false, deleted: false, sent_at: d.sent_at };
      if (d.sender_id === S.me) {
        c.read_seq = Math.max(c.read_seq, ev.seq);
        c.unread = 0;
      } else if (S.current === c.id && document.visibilityState !== "hidden" && atBottom()) {
        markRead(c, ev.seq);
      } else if (ev.seq > c.read_seq) {
        c.unread++;
      }
      break;
    }
    case "chat.mls.message.sent.v1": {
      if (!c.items.has(ev.seq)) {
        const m = {
          kind: "message", seq: ev.seq, sender: d.sender_id, body: LOCKED, sent_at: d.sent_at,
          reply_to: 0, edited_at: null, deleted: false, reactions: new Map(), attachments: [], thumbs: new Map(), encrypted: true,
        };
        c.items.set(ev.seq, m);
        // Read or sent by this device before: kept in IndexedDB.
        S.e2ee?.text(c.id, ev.seq).then((text) => {
          if (text !== undefined && m.body === LOCKED) {
            m.body = text;
            renderSoon();
          }
        });
      }
      if (!live) break;
      c.typing.delete(d.sender_id);
      if (!c.last_message || ev.seq > c.last_message.seq) {
        c.last_message = { seq: ev.seq, sender_id: d.sender_id, body: c.items.get(ev.seq).body, edited: false, deleted: false, sent_at: d.sent_at };
      }
      if (d.sender_id === S.me) {
        c.read_seq = Math.max(c.read_seq, ev.seq);
        c.unread = 0;
      } else if (S.current === c.id && document.visibilityState !== "hidden" && atBottom()) {
        markRead(c, ev.seq);
      } else if (ev.seq > c.read_seq) {
        c.unread++;
      }
      break;
    }
    case "chat.mls.committed.v1":
      for (const m of d.members_added || []) if (!c.members.some((x) => x.user_id === m.user_id)) c.members.push(m);
      c.members = c.members.filter((m) => !(d.members_removed || []).includes(m.user_id));
      {
        const owners = (ds) => [...new Set((ds || []).map((x) => x.user_id))].join(", ");
        const said = [];
        if (d.added_devices?.length) said.push(`added a device of ${owners(d.added_devices)}`);
        if (d.removed_devices?.length) said.push(`removed a device of ${owners(d.removed_devices)}`);
        if (d.members_removed?.length) said.push(`removed ${d.members_removed.join(", ")} from the group`);
        line(`🔒 ${d.user_id} ${said.join("; ") || "updated the group's keys"}`);
      }
      if (live && (d.members_removed || []).includes(S.me)) leave(c);
      else if (live) watchPresence();
      break;
    case "chat.message.edited.v1":
      withMessage(c, d.message_seq, ev, (m) => {
        m.body = d.body;
        m.edited_at = d.edited_at;
      });
      if (c.last_message?.seq === d.message_seq) c.last_message = { ...c.last_message, body: d.body, edited: true };
      break;
    case "chat.message.deleted.v1":
      withMessage(c, d.message_seq, ev, (m) => {
        m.deleted = true;
        m.body = "";
        m.reactions.clear();
      });
      if (c.last_message?.seq === d.message_seq) c.last_message = { ...c.last_message, body: "", deleted: true };
      break;
    case "chat.thumbnail.added.v1":
      withMessage(c, d.message_seq, ev, (m) => {
        m.thumbs.set(d.upload_id, { width: d.width, height: d.height });
      });
      break;
    case "chat.reaction.added.v1":
      withMessage(c, d.message_seq, ev, (m) => {
        if (!m.reactions.has(d.emoji)) m.reactions.set(d.emoji, new Set());
        m.reactions.get(d.emoji).add(d.user_id);
      });
      break;
    case "chat.reaction.removed.v1":
      withMessage(c, d.message_seq, ev, (m) => {
        m.reactions.get(d.emoji)?.delete(d.user_id);
        if (m.reactions.get(d.emoji)?.size === 0) m.reactions.delete(d.emoji);
      });
      break;
    case "chat.members.added.v1":
      for (const m of d.members) if (!c.members.some((x) => x.user_id === m.user_id)) c.members.push(m);
      line(`${d.user_id} added ${d.members.map((m) => m.user_id).join(", ")}`);
      if (live) watchPresence();
      break;
    case "chat.member.removed.v1":
      c.members = c.members.filter((m) => m.user_id !== d.member_id);
      line(`${d.user_id} removed ${d.member_id}`);
      if (live && d.member_id === S.me) leave(c);
      break;
    case "chat.member.left.v1":
      c.members = c.members.filter((m) => m.user_id !== d.user_id);
      line(`${d.user_id} left`);
      if (live && d.user_id === S.me) leave(c);
      break;
    case "chat.member.roles.changed.v1":
      for (const ch of d.changes) {
        const m = c.members.find((x) => x.user_id === ch.user_id);
        if (m) m.role = ch.role;
      }
      line(d.changes.map((ch) => `${d.user_id} made ${ch.user_id} ${ch.role === "owner" ? "the owner" : `an ${ch.role === "admin" ? "admin" : "member"}`}`).join("; "));
      break;
    case "chat.conversation.renamed.v1":
      c.title = d.title;
      line(`${d.user_id} renamed the group “${d.title}”`);
      break;
    case "chat.conversation.archived.v1":
      c.archived = d.archived;
      line(`${d.user_id} ${d.archived ? "archived" : "unarchived"} the group`);
      break;
    case "chat.conversation.blocked.v1": {
      const others = c.blocked_by.filter((u) => u !== d.user_id);
      c.blocked_by = d.blocked ? [...others, d.user_id].sort() : others;
      line(`${d.user_id} ${d.blocked ? "blocked" : "unblocked"} the conversation`);
      break;
    }
    default:
      // New event types may appear; a client skips what it does not know.
      break;
  }
}

// withMessage changes a message we have, or keeps the change for when
// the message comes (a page of older history).
function withMessage(c, seq, ev, change) {
  const m = c.items.get(seq);
  if (m && m.kind === "message") change(m);
  else {
    if (!c.later.has(seq)) c.later.set(seq, []);
    c.later.get(seq).push(ev);
  }
}

// checkMembership asks whether the user still belongs to a conversation
// the server would not resume: one they were removed from while away.
async function checkMembership(c, attempt = 0) {
  try {
    const s = await S.api.conversation(c.id);
    const cur = S.conn.cursor(c.id);
    if (cur !== undefined && s.last_seq < cur) setBack(c, s.last_seq);
    upsertSummary(s);
  } catch (err) {
    if (err.code === "not_member") leave(c);
    // Not found while history is made again from the log, or the
    // server out of reach: ask again, for about a minute.
    else if (attempt < 6) setTimeout(() => checkMembership(c, attempt + 1), 1000 * 2 ** attempt);
  }
  renderSoon();
}

// setBack: the conversation ends at seq, before what this page holds (a
// resume beyond it was refused): the server's log lost what came after,
// and new messages take those seqs (README, "A log that lost records").
// What is past seq goes, and the connection reads on from seq.
function setBack(c, seq) {
  for (const k of [...c.items.keys()]) if (k > seq) c.items.delete(k);
  for (const k of [...c.later.keys()]) if (k > seq) c.later.delete(k);
  c.last_seq = seq;
  if (c.last_message && c.last_message.seq > seq) c.last_message = null;
  c.read_seq = Math.min(c.read_seq, seq);
  c.peerRead = Math.min(c.peerRead, seq);
  c.peerDelivered = Math.min(c.peerDelivered, seq);
  S.conn.rewind(c.id, seq);
  toast(`The server lost the latest messages of ${convName(c)}; new ones follow what it kept`);
}

function leave(c) {
  c.left = true;
  S.conn.forget(c.id);
}

function onReceipt(f) {
  const c = conv(f.conversation_id);
  if (f.user_id === S.me) {
    if (f.kind === "read" && f.seq >= c.read_seq) {
      c.read_seq = f.seq;
      if (!c.last_message || f.seq >= c.last_message.seq) c.unread = 0;
    }
  } else if (f.kind === "read") {
    c.peerRead = Math.max(c.peerRead, f.seq);
    c.peerDelivered = Math.max(c.peerDelivered, f.seq);
  } else {
    c.peerDelivered = Math.max(c.peerDelivered, f.seq);
  }
  renderSoon();
}

function onTyping(f) {
  if (f.user_id === S.me) return;
  const c = conv(f.conversation_id);
  const until = Math.min(Date.parse(f.expires_at) || 0, Date.now() + 6000);
  c.typing.set(f.user_id, until);
  renderSoon();
  setTimeout(renderSoon, until - Date.now() + 50);
}

function onPresence(f) {
  for (const u of f.users) S.presence.set(u.user_id, u);
  renderSoon();
}

let watchTimer;
function watchPresence() {
  clearTimeout(watchTimer);
  watchTimer = setTimeout(() => {
    const users = new Set();
    for (const c of S.convs.values()) for (const m of c.members) if (m.user_id !== S.me) users.add(m.user_id);
    S.conn.watch([...users].sort());
  }, 200);
}

// --- reading a conversation -----------------------------------------------

async function open(id) {
  if (S.current !== id) {
    S.current = id;
    S.replyTo = S.editing = S.picker = null;
    S.nodes.clear();
    $("#message-list").replaceChildren();
    if (S.panel === "members" || S.panel === "thread") closePanel();
  }
  $("#app").classList.add("open");
  const c = conv(id);
  render();
  if (!c.loaded) await loadNewest(c);
  render();
  scrollToBottom();
  markRead(c);
  loadReceipts(c);
  if (!c.left) $("#composer-input").focus();
}

// applyPage folds a page of history into the conversation.
function applyPage(c, page) {
  for (const ev of page.events) applyEvent(c, ev, false);
}

function oldestSeq(c) {
  let min = Infinity;
  for (const s of c.items.keys()) min = Math.min(min, s);
  return min;
}

// loadNewest loads the newest page, then whatever history has between
// it and what the socket has handed over (history follows the log
// within moments, so it may have to be asked twice).
function loadNewest(c) {
  c.loading ||= (async () => {
    try {
      const page = await S.api.history(c.id, { limit: PAGE });
      applyPage(c, page);
      c.hasMore = page.has_more;
      let top = page.events.length ? page.events[page.events.length - 1].seq : -1;
      const target = S.conn.cursor(c.id) ?? c.last_seq;
      for (let i = 0; i < 20 && top < target; i++) {
        const next = await S.api.history(c.id, { after: Math.max(top, 0), limit: 200 });
        applyPage(c, next);
        if (next.events.length) top = next.events[next.events.length - 1].seq;
        else await new Promise((r) => setTimeout(r, 300));
      }
      c.loaded = true;
    } catch (err) {
      toast(`Could not load the conversation: ${err.message}`);
    } finally {
      c.loading = null;
    }
  })();
  return c.loading;
}

function loadOlder(c) {
  if (!c.hasMore) return Promise.resolve();
  c.loadingOlder ||= (async () => {
    const box = $("#messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    try {
      const before = oldestSeq(c);
      const page = await S.api.history(c.id, { before: before === Infinity ? undefined : before, limit: PAGE });
      applyPage(c, page);
      c.hasMore = page.has_more && page.events.length > 0;
      render();
      box.scrollTop = box.scrollHeight - fromBottom; // keep what was on screen in place
    } catch (err) {
      toast(`Could not load older messages: ${err.message}`);
    } finally {
      c.loadingOlder = null;
    }
  })();
  return c.loadingOlder;
}

function lastMessageSeq(c) {
  let last = 0;
  for (const [seq, it] of c.items) if (it.kind === "message" && seq > last) last = seq;
  return Math.max(last, c.last_message?.seq || 0);
}

// markRead records that the user has read the conversation up to seq
// (default: all of it), on every device of theirs.
function markRead(c, seq) {
  if (c.left || document.visibilityState === "hidden") return;
  const upTo = seq ?? lastMessageSeq(c);
  if (upTo <= c.read_seq) return;
  c.read_seq = upTo;
  c.unread = 0;
  S.conn.command("read", { command_id: `read:${c.id}`, conversation_id: c.id, seq: upTo }).catch(() => {});
  renderSoon();
}

// loadReceipts asks how far the others have read: in a direct
// conversation the other member's markers, in a group how many members
// have read the user's newest message.
async function loadReceipts(c) {
  if (c.left) return;
  try {
    if (c.kind === "direct") {
      const r = await S.api.receipts(c.id);
      for (const m of r.receipts || []) {
        if (m.user_id === S.me) continue;
        c.peerRead = Math.max(c.peerRead, m.read_seq || 0);
        c.peerDelivered = Math.max(c.peerDelivered, m.delivered_seq || 0, m.read_seq || 0);
      }
    } else {
      const mine = [...c.items.values()].filter((m) => m.kind === "message" && m.sender === S.me && !m.deleted).pop();
      if (!mine) return;
      const r = await S.api.receipts(c.id, mine.seq);
      c.groupReceipt = { seq: mine.seq, read: r.read, delivered: r.delivered, members: r.members };
    }
    renderSoon();
  } catch {
    // Receipts are a nicety; the next open asks again.
  }
}

setInterval(() => {
  const c = S.current && S.convs.get(S.current);
  if (c && c.kind === "group" && S.conn?.state === State.ONLINE) loadReceipts(c);
}, 10000);

// --- writing ------------------------------------------------------------------

function submitComposer() {
  const c = S.current && conv(S.current);
  const input = $("#composer-input");
  const body = input.value.trim();
  const ups = c ? uploadsOf(c) : [];
  const ready = S.editing ? [] : ups.filter((u) => u.state === "done");
  if (!c || (!body && ready.length === 0)) return;
  if (c.encrypted) {
    if (S.editing || ups.length) {
      toast("An encrypted conversation takes text messages only");
      return;
    }
    S.e2ee.send(c.id, body).catch((err) => toast(`Not sent: ${err.message}`));
    input.value = "";
    cancelContext();
    return;
  }
  if (S.editing) {
    const seq = S.editing;
    S.conn.command("edit", { conversation_id: c.id, seq, body }).catch((err) => toast(`Not edited: ${err.message}`));
  } else {
    if (ups.some(busy)) {
      toast("Wait until the files are uploaded, or cancel them");
      return;
    }
    send(c, { command_id: newID(), body, reply_to: S.replyTo || 0, attachments: ready.map((u) => u.attachment) });
    S.uploads.delete(c.id);
    renderUploads();
  }
  input.value = "";
  cancelContext();
  S.lastTyping = 0;
}

// send shows the message at once (optimistic display) and queues its
// command; the event replaces it when the log has it.
function send(c, p) {
  p.state = "sending";
  p.sent_at = new Date().toISOString();
  c.pending.set(p.command_id, p);
  render();
  scrollToBottom();
  const fields = { conversation_id: c.id, command_id: p.command_id, body: p.body };
  if (p.reply_to) fields.reply_to = p.reply_to;
  if (p.attachments?.length) fields.attachments = p.attachments;
  S.conn
    .command("send", fields)
    .then((ack) => {
      if (c.items.has(ack.seq)) c.pending.delete(p.command_id);
      p.state = "sent";
      renderSoon();
      if (c.kind === "group") setTimeout(() => loadReceipts(c), 1500);
    })
    .catch((err) => {
      p.state = "failed";
      p.error = err.message;
      renderSoon();
    });
}

// --- files ---------------------------------------------------------------------

function uploadsOf(c) {
  if (!S.uploads.has(c.id)) S.uploads.set(c.id, []);
  return S.uploads.get(c.id);
}

const busy = (u) => u.state === "hashing" || u.state === "uploading";

// addFiles starts uploading files for the message being written in the
// open conversation; each shows in the composer with its progress.
function addFiles(files) {
  const c = S.current && conv(S.current);
  if (!c || c.left || c.archived) return;
  const ups = uploadsOf(c);
  for (const file of files) {
    if (ups.length >= MAX_FILES) {
      toast(`At most ${MAX_FILES} files on one message`);
      break;
    }
    const u = new Upload(file, () => renderUploads());
    ups.push(u);
    u.start(S.api, c.id);
  }
  renderUploads();
}

function removeUpload(c, u) {
  u.cancel();
  const ups = uploadsOf(c);
  ups.splice(ups.indexOf(u), 1);
  renderUploads();
  $("#composer-input").focus();
}

// renderUploads draws the composer's files in place (a progress event
// changes a bar's value, not the list), so focus stays where it is.
function renderUploads() {
  const c = S.current && conv(S.current);
  const ups = c ? uploadsOf(c) : [];
  const ul = $("#composer-files");
  ul.hidden = ups.length === 0;
  const keys = new Set(ups.map((u) => u.key));
  for (const li of [...ul.children]) if (!keys.has(li.dataset.key)) li.remove();
  ups.forEach((u, i) => {
    let li = [...ul.children].find((x) => x.dataset.key === u.key);
    if (!li) li = drawUpload(c, u);
    updateUpload(li, u);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  $("#composer-send").setAttribute("aria-disabled", ups.some(busy) ? "true" : "false");
}

function drawUpload(c, u) {
  return h("li", { class: "upload", "data-key": u.key },
    h("span", { class: "upload-name" }, u.name),
    h("span", { class: "upload-size" }, sizeText(u.size)),
    h("progress", { max: "100", value: "0", "aria-label": `Uploading ${u.name}` }),
    h("span", { class: "upload-status" }),
    h("button", { type: "button", class: "upload-remove", "data-action": "remove-upload", onclick: () => removeUpload(c, u) }));
}

function updateUpload(li, u) {
  li.dataset.state = u.state;
  const bar = li.querySelector("progress");
  bar.value = u.percent;
  bar.hidden = u.state === "failed";
  const status = li.querySelector(".upload-status");
  const text = u.state === "hashing" ? "Preparing…" : u.state === "uploading" ? `${u.percent} %` : u.state === "done" ? "100 % · ready" : u.state === "failed" ? `Not uploaded: ${u.error}` : "";
  if (status.textContent !== text) status.textContent = text;
  if (u.state === "failed") status.setAttribute("role", "alert");
  const remove = li.querySelector(".upload-remove");
  const label = busy(u) ? `Cancel the upload of ${u.name}` : `Remove ${u.name}`;
  if (remove.getAttribute("aria-label") !== label) {
    remove.setAttribute("aria-label", label);
    remove.textContent = busy(u) ? "Cancel" : "Remove";
  }
}

// link is a presigned URL of a message's file n (or its thumbnail),
// reused until shortly before it expires.
async function link(c, seq, n, thumbnail) {
  const key = `${c.id}/${seq}/${n}${thumbnail ? "/t" : ""}`;
  const hit = S.links.get(key);
  if (hit && hit.until > Date.now()) return hit.url;
  const out = await S.api.attachmentLink(c.id, seq, n, thumbnail);
  const until = (Date.parse(out.expires_at) || Date.now() + 60000) - 30000;
  S.links.set(key, { url: out.url, until });
  return out.url;
}

// download fetches the file's URL and follows it: the store answers
// with Content-Disposition: attachment, so the browser saves it and the
// page stays.
async function download(c, seq, n) {
  try {
    const url = await link(c, seq, n, false);
    const a = h("a", { href: url, rel: "noopener", hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    toast(`Not downloaded: ${err.message}`);
  }
}

// renderAttachment draws file n of a message: the image's thumbnail once
// the server has made it, else a chip with its name and size; either
// downloads the file.
function renderAttachment(c, m, a, n) {
  const label = `${a.name}, ${sizeText(a.size)}`;
  const thumb = isThumbnailed(a.content_type) && m.thumbs.get(a.upload_id);
  const attrs = { type: "button", "data-action": `download-${n}`, "aria-label": `Download ${label}`, title: label, onclick: () => download(c, m.seq, n) };
  if (thumb) {
    const img = h("img", { class: "att-thumb", alt: a.name, width: thumb.width, height: thumb.height });
    link(c, m.seq, n, true).then((url) => { img.src = url; }, (err) => { img.alt = `${a.name} (no preview: ${err.message})`; });
    return h("button", { ...attrs, class: "att-image" }, img);
  }
  return h("button", { ...attrs, class: "att-file" },
    h("span", { class: "att-icon", "aria-hidden": "true" }, isThumbnailed(a.content_type) ? "🖼" : "📄"),
    h("span", { class: "att-name" }, a.name),
    h("span", { class: "att-size" }, sizeText(a.size)));
}

// textOrFiles is a message's text, or "📎 name, name" when it has files
// and no text, for the places that show a message in one line.
function textOrFiles(body, attachments) {
  return body || (attachments?.length ? `📎 ${attachments.map((a) => a.name).join(", ")}` : "");
}

function renderAttachments(c, m) {
  if (m.deleted || !m.attachments?.length) return null;
  return h("ul", { class: "attachments", "aria-label": "Files" },
    m.attachments.map((a, n) => h("li", {}, m.kind === "pending"
      ? h("span", { class: "att-file" }, h("span", { class: "att-icon", "aria-hidden": "true" }, "📎"), h("span", { class: "att-name" }, a.name), h("span", { class: "att-size" }, sizeText(a.size)))
      : renderAttachment(c, m, a, n))));
}

function cancelContext() {
  const wasEditing = S.editing;
  S.replyTo = S.editing = null;
  if (wasEditing) $("#composer-input").value = "";
  renderComposer();
}

function react(c, m, emoji) {
  const mine = m.reactions.get(emoji)?.has(S.me);
  S.picker = null;
  S.conn
    .command(mine ? "unreact" : "react", { conversation_id: c.id, seq: m.seq, emoji })
    .catch((err) => toast(`Reaction not changed: ${err.message}`));
  renderSoon();
}

async function startDirect(user) {
  if (!user) return;
  try {
    const out = await S.api.create({ kind: "direct", members: [user], command_id: newID() });
    upsertSummary(out);
    watchPresence();
    open(out.conversation_id);
  } catch (err) {
    const existing = [...S.convs.values()].find((c) => c.kind === "direct" && c.members.some((m) => m.user_id === user));
    if (err.code === "conversation_exists" && existing) open(existing.id);
    else toast(`Could not start the chat: ${err.message}`);
  }
}

async function createGroup(title, members, encrypted) {
  if (!title) return;
  try {
    const body = { kind: "group", title, members, command_id: newID() };
    if (encrypted) Object.assign(body, { encrypted: true, device_id: deviceId() });
    const out = await S.api.create(body);
    upsertSummary(out);
    watchPresence();
    open(out.conversation_id);
    // The group's keys: this device makes the MLS group and adds a
    // device of each member's.
    if (encrypted) await S.e2ee.createGroup(out.conversation_id, members);
  } catch (err) {
    toast(`Could not create the group: ${err.message}`);
  }
}

async function search(q) {
  if (!q) return;
  S.panel = "search";
  showPanel("Search results", [h("p", { class: "muted" }, "Searching…")]);
  try {
    const out = await S.api.search(q);
    const items = out.results.map((r) =>
      h("li", {},
        h("button", { type: "button", class: "result", "data-result": `${r.conversation_id}:${r.seq}`, onclick: () => jumpTo(r.conversation_id, r.seq) },
          h("span", { class: "muted" }, `${convName(conv(r.conversation_id))} · ${r.sender_id} · ${timeOf(r.sent_at)}`),
          h("span", {}, highlighted(r.snippet)))),
    );
    showPanel(`Search results for “${q}”`, items.length ? [h("ul", { id: "search-results" }, items)] : [h("p", {}, "Nothing found.")]);
  } catch (err) {
    showPanel("Search results", [h("p", {}, `Search failed: ${err.message}`)]);
  }
}

// jumpTo opens a conversation at one of its messages, loading older
// pages until it is there.
async function jumpTo(id, seq) {
  if (matchMedia("(max-width: 700px)").matches) closePanel(); // one column: show the conversation
  await open(id);
  const c = conv(id);
  for (let i = 0; i < 100 && !c.items.has(seq) && c.hasMore; i++) await loadOlder(c);
  render();
  const el = document.getElementById(`m-${seq}`);
  if (!el) {
    toast("That message is no longer there.");
    return;
  }
  el.scrollIntoView({ block: "center" });
  el.classList.add("flash");
  el.focus();
  setTimeout(() => el.classList.remove("flash"), 2500);
}

async function showThread(c, seq) {
  S.panel = "thread";
  showPanel("Thread", [h("p", { class: "muted" }, "Loading…")]);
  $("#panel-close").focus();
  try {
    const t = await S.api.thread(c.id, seq);
    showPanel("Thread", [
      h("ol", { class: "thread" },
        t.events.map((ev) =>
          h("li", {},
            h("button", { type: "button", class: "result", onclick: () => jumpTo(c.id, ev.seq) },
              h("span", { class: "muted" }, `${ev.data.sender_id} · ${timeOf(ev.data.sent_at)}`),
              h("span", {}, ev.message ? (ev.message.deleted ? "(deleted)" : textOrFiles(ev.message.body, ev.data.attachments)) : textOrFiles(ev.data.body, ev.data.attachments)))))),
    ]);
  } catch (err) {
    showPanel("Thread", [h("p", {}, `Could not load the thread: ${err.message}`)]);
  }
}

// --- drawing ------------------------------------------------------------------

let renderQueued = false;
function renderSoon() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function render() {
  renderConversations();
  renderConversation();
  if (S.panel === "members" && S.current) renderMembers(conv(S.current));
}

function convName(c) {
  if (c.kind === "group") return c.title || "Group";
  const other = c.members.find((m) => m.user_id !== S.me);
  return other ? other.user_id : c.members.length ? "Just you" : "…";
}

function presenceOf(user) {
  if (user === S.me) return S.conn?.state === State.ONLINE ? "online" : "offline";
  return S.presence.get(user)?.status || "offline";
}

function dotFor(c) {
  if (c.kind === "group") return h("span", { class: "dot group", "aria-hidden": "true" });
  const other = c.members.find((m) => m.user_id !== S.me);
  const st = other ? presenceOf(other.user_id) : "offline";
  return h("span", { class: `dot ${st}`, title: st, "aria-hidden": "true" });
}

// reconcile makes list show items (each {key, ver, draw}) in order,
// drawing an item again only when its ver changed: nodes stay put
// between renders, so clicks, focus and scroll are not lost.
function reconcile(list, nodes, items) {
  const seen = new Set();
  let prev = null;
  for (const { key, ver, draw } of items) {
    seen.add(key);
    let el = nodes.get(key);
    if (!el || el.dataset.ver !== ver) {
      const fresh = draw();
      fresh.dataset.ver = ver;
      if (el) {
        const active = el.contains(document.activeElement) ? document.activeElement : null;
        const refocus = active ? active.dataset.action || active.dataset.conv || "item" : null;
        el.replaceWith(fresh);
        if (refocus) (fresh.querySelector(`[data-action="${CSS.escape(refocus)}"], [data-conv="${CSS.escape(refocus)}"]`) || fresh).focus();
      }
      el = fresh;
      nodes.set(key, el);
    }
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== el) list.insertBefore(el, want);
    prev = el;
  }
  for (const [key, el] of nodes) {
    if (!seen.has(key)) {
      el.remove();
      nodes.delete(key);
    }
  }
}

const convNodes = new Map();

function renderConversations() {
  const convs = [...S.convs.values()].filter((c) => c.kind).sort((a, b) => (b.last_activity || "").localeCompare(a.last_activity || "") || a.id.localeCompare(b.id));
  let total = 0;
  const items = convs.map((c) => {
    total += c.unread;
    const other = c.kind === "direct" ? c.members.find((m) => m.user_id !== S.me) : null;
    const preview = c.last_message
      ? `${c.last_message.sender_id === S.me ? "You" : c.last_message.sender_id}: ${c.last_message.deleted ? "(deleted)" : c.last_message.body}`
      : "No messages yet";
    const status = other ? presenceOf(other.user_id) : "group";
    const label = [convName(c), status, c.unread ? `${c.unread} unread` : "", c.left ? "you left" : ""].filter(Boolean).join(", ");
    const current = c.id === S.current;
    return {
      key: c.id,
      ver: JSON.stringify([label, preview, current]),
      draw: () =>
        h("li", {},
          h("button", { type: "button", "data-conv": c.id, "aria-current": current ? "true" : false, "aria-label": label, onclick: () => open(c.id) },
            dotFor(c),
            h("span", { class: "conv-name" }, convName(c) + (c.left ? " (left)" : "")),
            c.unread ? h("span", { class: "unread", "aria-hidden": "true" }, String(c.unread)) : h("span"),
            h("span", { class: "conv-preview", "aria-hidden": "true" }, preview))),
    };
  });
  reconcile($("#conversations"), convNodes, items);
  $("#unread-total").textContent = total ? `${total} unread` : "";
  document.title = total ? `(${total}) Parley` : "Parley";
}

function myRole(c) {
  return c.members.find((m) => m.user_id === S.me)?.role || "";
}

function renderConversation() {
  const c = S.current ? conv(S.current) : null;
  $("#empty").hidden = !!c;
  $("#composer").hidden = !c || c.left || c.archived;
  $("#members-button").hidden = !c || c.kind !== "group";
  $("#block-button").hidden = !c || c.kind !== "direct" || c.left;
  $("#members-button").setAttribute("aria-expanded", S.panel === "members" ? "true" : "false");
  if (!c) return;
  $("#conv-title").textContent = convName(c);
  const iBlock = c.blocked_by.includes(S.me);
  $("#block-button").textContent = iBlock ? "Unblock" : "Block";
  $("#composer").hidden = c.left || c.archived || c.blocked_by.length > 0;
  let sub = "";
  if (c.left) sub = "You are no longer a member";
  else if (c.archived) sub = "Archived (read-only)";
  else if (c.kind === "group") sub = `${c.members.length} members`;
  else {
    const other = c.members.find((m) => m.user_id !== S.me);
    const p = other && S.presence.get(other.user_id);
    sub = p ? (p.status === "offline" && p.last_seen ? `offline, last seen ${timeOf(p.last_seen)}` : p.status) : "";
    if (c.blocked_by.length) sub = iBlock ? "You blocked this conversation" : "Blocked";
  }
  $("#conv-sub").textContent = sub;
  $("#load-older").hidden = !c.hasMore || !c.loaded;
  renderMessages(c);
  renderTyping(c);
  renderComposer();
  renderUploads();
}

function renderTyping(c) {
  const now = Date.now();
  const who = [...c.typing].filter(([, until]) => until > now).map(([u]) => u);
  $("#typing").textContent = who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…` : `${who.join(", ")} are typing…`;
}

function renderComposer() {
  const c = S.current && conv(S.current);
  const box = $("#composer-context");
  if (c && S.editing) {
    box.hidden = false;
    $("#composer-context-text").textContent = "Editing your message";
    $("#composer-send").textContent = "Save";
  } else if (c && S.replyTo) {
    const m = c.items.get(S.replyTo);
    box.hidden = false;
    $("#composer-context-text").textContent = `Replying to ${m ? `${m.sender}: ${short(m.body)}` : `message ${S.replyTo}`}`;
    $("#composer-send").textContent = "Send";
  } else {
    box.hidden = true;
    $("#composer-send").textContent = "Send";
  }
}

function short(s, n = 60) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// renderMessages updates the list in place: an item is drawn again only
// when what it shows changed, so focus and scroll stay where they are.
function renderMessages(c) {
  const stick = atBottom();
  const items = [...c.items.values()].sort((a, b) => a.seq - b.seq).map((it) => ({
    key: `s${it.seq}`,
    ver: version(c, it),
    draw: () => (it.kind === "system" ? renderSystem(it) : renderMessage(c, it)),
  }));
  for (const p of c.pending.values()) {
    const it = { ...p, kind: "pending" };
    items.push({ key: `p${p.command_id}`, ver: version(c, it), draw: () => renderMessage(c, it) });
  }
  reconcile($("#message-list"), S.nodes, items);
  if (stick) scrollToBottom();
}

function tick(c, m) {
  if (m.sender !== S.me || m.deleted) return "";
  if (c.kind === "direct") {
    if (m.seq <= c.peerRead) return "✓✓ Read";
    if (m.seq <= c.peerDelivered) return "✓✓ Delivered";
    return "✓ Sent";
  }
  const r = c.groupReceipt;
  if (r && r.seq === m.seq) return `Read by ${r.read} of ${r.members}`;
  return "";
}

function pendingText(p) {
  if (p.state === "failed") return `Not sent: ${p.error}`;
  if (S.conn.state !== State.ONLINE) return "Waiting for the connection…";
  return "Sending…";
}

function version(c, it) {
  if (it.kind === "system") return it.text;
  if (it.kind === "pending") return JSON.stringify([it.body, it.state, pendingText(it), it.attachments?.length]);
  return JSON.stringify([
    it.body, it.attachments?.length, [...(it.thumbs || [])].map(([u]) => u), it.deleted, it.edited_at, [...it.reactions].map(([e, u]) => [e, [...u]]), tick(c, it),
    S.picker === it.seq, myRole(c), c.left, c.archived, it.reply_to && c.items.get(it.reply_to)?.body,
  ]);
}

function renderSystem(it) {
  return h("li", { class: "system", id: `m-${it.seq}`, "data-seq": it.seq }, `${it.text} · ${timeOf(it.time)}`);
}

function renderMessage(c, m) {
  const mine = m.sender === S.me || m.kind === "pending";
  if (m.kind === "pending") {
    return h("li", { class: "msg mine pending", "data-command": m.command_id, tabindex: "-1" },
      h("div", { class: "msg-head" }, h("span", { class: "msg-sender" }, "You"), h("span", {}, timeOf(m.sent_at))),
      m.body ? h("p", { class: "msg-body" }, m.body) : null,
      renderAttachments(c, m),
      h("span", { class: `msg-state ${m.state === "failed" ? "failed" : ""}` }, pendingText(m)),
      m.state === "failed"
        ? h("div", { class: "msg-actions" },
            h("button", { type: "button", "data-action": "retry", onclick: () => send(c, m) }, "Retry"),
            h("button", { type: "button", "data-action": "discard", onclick: () => { c.pending.delete(m.command_id); render(); } }, "Discard"))
        : null);
  }
  const role = myRole(c);
  // An encrypted message takes no replies, reactions, edits or
  // deletions (yet): the server would refuse them.
  const canDelete = !m.encrypted && !m.deleted && !c.left && !c.archived && (mine || (c.kind === "group" && (role === "owner" || role === "admin")));
  const active = !m.encrypted && !m.deleted && !c.left && !c.archived;
  const quoted = m.reply_to ? c.items.get(m.reply_to) : null;
  const label = `${m.sender}, ${timeOf(m.sent_at)}`;
  return h("li", { class: `msg ${mine ? "mine" : ""} ${m.deleted ? "deleted" : ""}`, id: `m-${m.seq}`, "data-seq": m.seq, tabindex: "-1", "aria-label": label },
    h("div", { class: "msg-head" },
      h("span", { class: "msg-sender" }, m.sender),
      h("time", { datetime: m.sent_at }, timeOf(m.sent_at)),
      m.edited_at && !m.deleted ? h("span", { class: "edited" }, "(edited)") : null),
    m.reply_to
      ? h("button", { type: "button", class: "msg-quote", "data-action": "quote", onclick: () => jumpTo(c.id, m.reply_to) },
          `↪ ${quoted && quoted.kind === "message" ? `${quoted.sender}: ${quoted.deleted ? "(deleted)" : short(textOrFiles(quoted.body, quoted.attachments))}` : `an earlier message`}`)
      : null,
    m.body || m.deleted || !m.attachments?.length ? h("p", { class: "msg-body" }, m.deleted ? "This message was deleted." : m.body) : null,
    renderAttachments(c, m),
    m.reactions.size
      ? h("div", { class: "reactions", role: "group", "aria-label": "Reactions" },
          [...m.reactions].map(([emoji, users]) =>
            h("button", {
              type: "button", "data-action": `reaction-${emoji}`, "aria-pressed": users.has(S.me) ? "true" : "false",
              "aria-label": `${emoji} ${users.size}: ${[...users].join(", ")}`, title: [...users].join(", "),
              disabled: !active, onclick: () => react(c, m, emoji),
            }, `${emoji} ${users.size}`)))
      : null,
    tick(c, m) ? h("span", { class: "msg-state" }, tick(c, m)) : null,
    active || canDelete
      ? h("div", { class: "msg-actions" },
          active ? h("button", { type: "button", "data-action": "reply", onclick: () => { S.replyTo = m.seq; S.editing = null; renderComposer(); $("#composer-input").focus(); } }, "Reply") : null,
          active ? h("button", { type: "button", "data-action": "react", "aria-expanded": S.picker === m.seq ? "true" : "false", onclick: () => { S.picker = S.picker === m.seq ? null : m.seq; render(); } }, "React") : null,
          S.picker === m.seq
            ? h("span", { class: "picker", role: "group", "aria-label": "Pick a reaction" },
                QUICK_REACTIONS.map((e) => h("button", { type: "button", "data-action": `pick-${e}`, "aria-label": `React with ${e}`, onclick: () => react(c, m, e) }, e)))
            : null,
          m.reply_to ? h("button", { type: "button", "data-action": "thread", onclick: () => showThread(c, m.seq) }, "Thread") : null,
          active && mine ? h("button", { type: "button", "data-action": "edit", onclick: () => startEdit(m) }, "Edit") : null,
          canDelete ? h("button", { type: "button", "data-action": "delete", onclick: () => deleteMessage(c, m) }, "Delete") : null)
      : null);
}

function startEdit(m) {
  S.editing = m.seq;
  S.replyTo = null;
  const input = $("#composer-input");
  input.value = m.body;
  renderComposer();
  input.focus();
}

function deleteMessage(c, m) {
  S.conn.command("delete", { conversation_id: c.id, seq: m.seq }).catch((err) => toast(`Not deleted: ${err.message}`));
}

// --- the side panel: members, a thread, search results ------------------------

function showPanel(title, children) {
  $("#panel").hidden = false;
  $("#app").classList.add("panel-open");
  $("#panel-title").textContent = title;
  $("#panel-body").replaceChildren(...children);
}

function closePanel() {
  S.panel = null;
  $("#panel").hidden = true;
  $("#app").classList.remove("panel-open");
  renderConversation();
}

function togglePanel(which) {
  if (S.panel === which) {
    closePanel();
    return;
  }
  S.panel = which;
  S.membersVer = null;
  if (which === "members") renderMembers(conv(S.current));
  $("#panel-close").focus();
}

// renderMembers draws the members panel, again only when what it shows
// changed, so that typing in its fields is not interrupted.
function renderMembers(c) {
  const role = myRole(c);
  const manage = !c.left && !c.archived && (role === "owner" || role === "admin");
  const order = { owner: 0, admin: 1, member: 2 };
  const members = [...c.members].sort((a, b) => order[a.role] - order[b.role] || a.user_id.localeCompare(b.user_id));
  const ver = JSON.stringify([c.id, c.title, c.left, c.archived, role, members.map((m) => [m.user_id, m.role, presenceOf(m.user_id)])]);
  if (S.membersVer === ver && !$("#panel").hidden) return;
  S.membersVer = ver;
  const active = document.activeElement?.closest?.("#panel-body") ? document.activeElement : null;
  const focused = active ? active.dataset.action || active.id : null;
  const rows = members.map((m) => {
    const me = m.user_id === S.me;
    const canRemove = manage && !me && m.role !== "owner" && (role === "owner" || m.role === "member");
    const roleControl = role === "owner" && !me && !c.left && !c.archived
      ? h("select", { "aria-label": `Role of ${m.user_id}`, "data-action": `role-${m.user_id}`, onchange: (e) => setRole(c, m.user_id, e.target.value) },
          ["member", "admin", "owner"].map((r) => h("option", { value: r, selected: r === m.role }, r)))
      : h("span", { class: "muted" }, m.role);
    return h("li", { class: "member", "data-member": m.user_id },
      h("span", { class: `dot ${presenceOf(m.user_id)}`, title: presenceOf(m.user_id), "aria-hidden": "true" }),
      h("span", { class: "member-name" }, m.user_id + (me ? " (you)" : ""), h("span", { class: "visually-hidden" }, `, ${presenceOf(m.user_id)}`)),
      roleControl,
      canRemove ? h("button", { type: "button", "data-action": `remove-${m.user_id}`, "aria-label": `Remove ${m.user_id}`, onclick: () => removeMember(c, m.user_id) }, "Remove") : null);
  });
  const children = [h("ul", { id: "member-list" }, rows)];
  if (manage) {
    children.push(
      h("form", { id: "add-member-form", onsubmit: (e) => { e.preventDefault(); addMember(c, e.target.elements.user.value.trim()); } },
        h("label", { for: "add-member" }, "Add a member"),
        h("input", { id: "add-member", name: "user", autocomplete: "off", required: true }),
        h("button", { type: "submit" }, "Add")),
      h("form", { id: "rename-form", onsubmit: (e) => { e.preventDefault(); rename(c, e.target.elements.title.value.trim()); } },
        h("label", { for: "rename" }, "Title"),
        h("input", { id: "rename", name: "title", value: c.title, maxlength: "200", required: true }),
        h("button", { type: "submit" }, "Rename")));
  }
  if (role === "owner" && !c.left) {
    children.push(h("p", {}, h("button", { type: "button", "data-action": "archive", onclick: () => archive(c, !c.archived) }, c.archived ? "Unarchive the group" : "Archive the group")));
  }
  if (!c.left) children.push(h("p", {}, h("button", { type: "button", "data-action": "leave", onclick: () => leaveGroup(c) }, "Leave the group")));
  if (c.encrypted) children.push(h("h3", {}, "Safety numbers"), h("p", { class: "muted" }, "Compare each device's number with its owner, in person or over another channel."), h("ul", { id: "safety-numbers" }));
  // Keep what is half-typed, and the focus, when the panel is drawn again.
  const typed = { "add-member": $("#add-member")?.value };
  if (focused === "rename") typed.rename = $("#rename").value;
  showPanel(`Members of ${convName(c)}`, children);
  if (c.encrypted) {
    S.e2ee?.devices(c.id).then((devices) => {
      const ul = $("#safety-numbers");
      if (!ul) return;
      ul.replaceChildren(...devices.map((d) => h("li", { class: "safety-number", "data-device": d.identity },
        h("span", { class: "member-name" }, d.identity), h("code", {}, d.fingerprint),
        d.changed ? h("strong", { class: "changed" }, " ⚠ changed since you first saw this device: check it again") : null)));
    });
  }
  for (const [id, v] of Object.entries(typed)) if (v !== undefined && $(`#${id}`)) $(`#${id}`).value = v;
  if (focused) $("#panel-body").querySelector(`[data-action="${CSS.escape(focused)}"], #${CSS.escape(focused)}`)?.focus();
}

async function addMember(c, user) {
  if (!user) return;
  try {
    const users = user.split(/[\s,]+/).filter(Boolean);
    // An encrypted group changes members by an MLS commit of this device.
    if (c.encrypted) await S.e2ee.add(c.id, users);
    else await S.api.addMembers(c.id, users);
    if ($("#add-member")) $("#add-member").value = "";
  } catch (err) {
    toast(`Could not add ${user}: ${err.message}`);
  }
}

async function removeMember(c, user) {
  try {
    if (c.encrypted) await S.e2ee.remove(c.id, user);
    else await S.api.removeMember(c.id, user);
  } catch (err) {
    toast(`Could not remove ${user}: ${err.message}`);
  }
}

async function setRole(c, user, role) {
  try {
    await S.api.setRole(c.id, user, role);
  } catch (err) {
    toast(`Could not change the role: ${err.message}`);
    renderMembers(c);
  }
}

async function rename(c, title) {
  if (!title || title === c.title) return;
  try {
    await S.api.rename(c.id, title);
  } catch (err) {
    toast(`Could not rename: ${err.message}`);
  }
}

async function archive(c, archived) {
  try {
    await S.api.archive(c.id, archived);
  } catch (err) {
    toast(`Could not ${archived ? "archive" : "unarchive"}: ${err.message}`);
  }
}

// toggleBlock blocks or unblocks the other member of a direct
// conversation: while either blocks, neither can send there.
async function toggleBlock(c) {
  const other = c.members.find((m) => m.user_id !== S.me);
  if (!other) return;
  try {
    await S.api.block(other.user_id, !c.blocked_by.includes(S.me));
  } catch (err) {
    toast(`Could not change the block: ${err.message}`);
  }
}

async function leaveGroup(c) {
  try {
    // In an encrypted group this device proposes its departure; another
    // member's device commits it, and the commit's event says so here.
    if (c.encrypted) await S.e2ee.proposeLeave(c.id);
    else await S.api.leave(c.id, newID());
    closePanel();
  } catch (err) {
    toast(`Could not leave: ${err.message}`);
  }
}

// --- small things ---------------------------------------------------------------

function atBottom() {
  const box = $("#messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
}

function scrollToBottom() {
  const box = $("#messages");
  box.scrollTop = box.scrollHeight;
}

function renderBanner() {
  const b = $("#banner");
  const st = S.conn?.state;
  const unsent = S.conn ? S.conn.pending().filter((p) => p.frame.type !== "read").length : 0;
  if (st === State.ONLINE || !S.conn) {
    b.hidden = true;
    b.textContent = "";
    return;
  }
  b.hidden = false;
  const queued = unsent ? ` ${unsent} unsent ${unsent === 1 ? "message waits" : "messages wait"} and will be sent then.` : "";
  b.textContent = S.wasOnline ? `You are offline. Reconnecting…${queued}` : `Connecting…${queued}`;
  b.dataset.state = st;
}

let toastTimer;
function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 6000);
}

// Last, once every declaration of this module has run: with a token
// kept from before a reload, main draws at once, and the module's
// let/const bindings must exist by then.
main();
