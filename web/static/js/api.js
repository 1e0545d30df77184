// The HTTP API (schemas/openapi.yaml): reads (conversations, history,
// threads, receipts, search, presence) and the commands that are HTTP
// only (creating conversations, membership, roles, titles). Errors are
// problem+json; they reject with an ApiError carrying the stable code.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.retryable = !!problem.retryable;
  }
}

export class Api {
  // token: the bearer JWT; onUnauthorized is called on a 401.
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  async request(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${this.token}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let out = {};
    try {
      out = text ? JSON.parse(text) : {};
    } catch {
      out = { detail: text };
    }
    if (!resp.ok) {
      if (resp.status === 401) this.onUnauthorized(out);
      throw new ApiError(resp.status, out);
    }
    return out;
  }

  conversations(cursor) {
    const q = new URLSearchParams({ limit: "200" });
    if (cursor) q.set("cursor", cursor);
    return this.request("GET", `/v1/conversations?${q}`);
  }
  conversation(id) {
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}`);
  }
  // history pages by seq: {before} for older, {after} for newer, neither
  // for the newest page.
  history(id, { before, after, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    if (after !== undefined) q.set("after", String(after));
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}/history?${q}`);
  }
  thread(id, seq) {
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}/messages/${seq}/thread`);
  }
  receipts(id, seq) {
    const q = seq ? `?seq=${seq}` : "";
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}/receipts${q}`);
  }
  search(q) {
    return this.request("GET", `/v1/search?${new URLSearchParams({ q, limit: "30" })}`);
  }
  create(body) {
    return this.request("POST", "/v1/conversations", body);
  }
  addMembers(id, userIds) {
    return this.request("POST", `/v1/conversations/${encodeURIComponent(id)}/members`, { user_ids: userIds });
  }
  removeMember(id, user) {
    return this.request("DELETE", `/v1/conversations/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}`);
  }
  setRole(id, user, role) {
    return this.request("PUT", `/v1/conversations/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}/role`, { role });
  }
  rename(id, title) {
    return this.request("PATCH", `/v1/conversations/${encodeURIComponent(id)}`, { title });
  }
  archive(id, archived) {
    return this.request("PATCH", `/v1/conversations/${encodeURIComponent(id)}`, { archived });
  }
  block(user, blocked) {
    return this.request(blocked ? "PUT" : "DELETE", `/v1/blocks/${encodeURIComponent(user)}`);
  }
  // startUpload asks for a presigned upload of a file to conversation id:
  // {upload_id, method, url, headers, expires_at} (uploads.js sends it).
  startUpload(id, file) {
    return this.request("POST", `/v1/conversations/${encodeURIComponent(id)}/uploads`, file);
  }
  // attachmentLink is a short-lived presigned URL of a message's file n,
  // or of its thumbnail: {url, expires_at, name, size, content_type}. The
  // URL goes to the file store, which must never see the bearer token.
  attachmentLink(id, seq, n, thumbnail) {
    const path = `/v1/conversations/${encodeURIComponent(id)}/messages/${seq}/attachments/${n}${thumbnail ? "/thumbnail" : ""}`;
    return this.request("GET", `${path}?redirect=false`);
  }
  leave(id, commandId) {
    return this.request("POST", `/v1/conversations/${encodeURIComponent(id)}/leave`, { command_id: commandId });
  }
}
