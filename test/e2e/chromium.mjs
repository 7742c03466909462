// How the e2e checks and the browser bench start Debian's Chromium (headless, no network side traffic).
import path from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium's config and cache inside the throwaway profile folder. */
export const chromiumEnv = (profile) => ({
  ...process.env,
  XDG_CONFIG_HOME: path.join(profile, 'xdg-config'),
  XDG_CACHE_HOME: path.join(profile, 'xdg-cache'),
});
