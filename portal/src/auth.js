// Sign-in with Microsoft Entra ID: authorization code with PKCE through MSAL, redirect flow.
// Tokens live in sessionStorage (MSAL's cache), never in localStorage.

import { CacheLookupPolicy, InteractionRequiredAuthError, PublicClientApplication } from "@azure/msal-browser";

let app = null;
let settings = null;

/** The page's own address without query or fragment: the redirect URI registered for the portal. */
export function redirectUri() {
  return window.location.origin + window.location.pathname.replace(/index\.html$/, "");
}

/**
 * Load MSAL with the portal's config.json and finish a sign-in that is coming back.
 * Returns the route the person was on when they started signing in, if this load is that return.
 */
export async function initAuth(config) {
  settings = config;
  app = new PublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: config.knownAuthorities,
      redirectUri: redirectUri(),
      // The page routes with the fragment, so the authority answers in the query.
      OIDCOptions: { responseMode: "query" },
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await app.initialize();
  const result = await app.handleRedirectPromise({ navigateToLoginRequestUrl: false });
  if (result && result.account) {
    app.setActiveAccount(result.account);
  } else if (!app.getActiveAccount()) {
    const accounts = app.getAllAccounts();
    if (accounts.length > 0) app.setActiveAccount(accounts[0]);
  }
  return result ? result.state || "" : null;
}

export function currentAccount() {
  return app ? app.getActiveAccount() : null;
}

/** Start signing in; the page comes back to `returnRoute` (a "#/..." fragment) afterwards. */
export async function signIn(returnRoute) {
  await app.loginRedirect({
    scopes: settings.scopes,
    prompt: "select_account",
    state: returnRoute || "",
  });
}

/** Forget the session in this tab (tokens and account). */
export async function signOut() {
  await app.clearCache();
  app.setActiveAccount(null);
}

// The authority's answer to a refresh token it no longer takes (expired, revoked): sign in again.
// (MSAL raises it as a plain server error: `invalid_grant` is not among its interaction-required codes.)
const REFRESH_TOKEN_REFUSED = new Set(["invalid_grant"]);

/**
 * An access token for the API: from the cache, else with the refresh token, else by signing in again.
 * MSAL's hidden-frame fallback is not tried: the portal's CSP allows no frame of the authority, so it
 * could only time out (10 s) before the same sign-in.
 */
export async function accessToken() {
  const account = currentAccount();
  if (!account) throw new NotSignedIn();
  try {
    const result = await app.acquireTokenSilent({
      scopes: settings.scopes,
      account,
      cacheLookupPolicy: CacheLookupPolicy.AccessTokenAndRefreshToken,
    });
    return result.accessToken;
  } catch (error) {
    // Anything else (no network, another sign-in under way) is the view's error to show: leaving
    // the page for it would lose what the user was doing.
    if (error instanceof InteractionRequiredAuthError || REFRESH_TOKEN_REFUSED.has(error?.errorCode)) {
      await app.acquireTokenRedirect({ scopes: settings.scopes, account, state: window.location.hash });
    }
    throw error;
  }
}

export class NotSignedIn extends Error {
  constructor() {
    super("Not signed in");
    this.name = "NotSignedIn";
  }
}
