// The sign-in screen.

import { h, setChildren, setText } from "../dom.js";
import { ApiError } from "../api.js";
import { explain } from "../errors.js";

/**
 * Show the form in `root`; `submit(username, password)` signs in and starts
 * the app, and throws (an ApiError, usually) to show why it could not.
 */
export function showLogin(root, { message = null, lastUser = null, submit }) {
  document.body.dataset.screen = "login";
  const error = h("p", { class: "login-error", role: "alert" });
  if (message) setText(error, message);
  const username = h("input", {
    id: "login-user",
    name: "username",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
    value: lastUser?.username || "",
  });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit", class: "primary big" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login-form",
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          button.disabled = true;
          setText(error, "");
          try {
            await submit(username.value.trim(), password.value);
          } catch (err) {
            const e = err instanceof ApiError ? err : null;
            const why = explain(
              e?.code === "unauthenticated" ? { code: "wrong_password" } : e?.error || { code: "network" },
            );
            setText(error, `${why.title} ${why.action}`);
            button.disabled = false;
            password.select();
          }
        },
      },
    },
    h("h1", { class: "brand" }, "Liaison"),
    h("p", { class: "login-sub" }, "Joint incident coordination"),
    h("label", { for: "login-user" }, "User name"),
    username,
    h("label", { for: "login-password" }, "Password"),
    password,
    button,
    error,
  );
  setChildren(root, h("main", { class: "login" }, form));
  (lastUser ? password : username).focus();
  performance.mark("liaison-login-ready");
}
