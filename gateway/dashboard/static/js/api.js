// Talking to the server: JSON in and out, one readable error line on failure.

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const state = { board: null, timezone: null };

export function withBoard(path) {
  if (!state.board) return path;
  const sep = path.includes("?") ? "&" : "?";
  return `${path}${sep}board=${encodeURIComponent(state.board)}`;
}

export async function api(method, path, body, { board = true } = {}) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return send(board ? withBoard(path) : path, init);
}

// One file's raw bytes (the web chat's POST /chat/upload?name=…); answers JSON like api().
export function upload(path, file) {
  const url = `${path}${path.includes("?") ? "&" : "?"}name=${encodeURIComponent(file.name)}`;
  return send(url, {
    method: "POST", body: file, credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" },
  });
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "could not reach the board");
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    const err = new ApiError(response.status, message);
    err.data = data;
    throw err;
  }
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body ?? {}, opts);
