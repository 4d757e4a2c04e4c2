// The page's strings in English, 简体中文 and 日本語. A message is a string with {name}
// placeholders, or {one, other} where English needs a plural.
import en from "./locales/en.js";
import ja from "./locales/ja.js";
import zhHans from "./locales/zh-Hans.js";

const LANGUAGES = { en, "zh-Hans": zhHans, ja };
const STORAGE_KEY = "lang";

/** The reader's language: their earlier choice on this page, else the browser's, else English. */
export function preferredLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved && LANGUAGES[saved]) return saved;
  } catch (e) { /* storage blocked: fall through */ }
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) return "zh-Hans";
    if (lower.startsWith("ja")) return "ja";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/** Remember the reader's choice for their next visit. */
export function saveLanguage(lang) {
  try { localStorage.setItem(STORAGE_KEY, lang); } catch (e) { /* private mode */ }
}

/** A translate function for `lang` over the main page's strings: t(key, params) -> text. */
export function translator(lang) {
  return translatorFor(LANGUAGES, lang);
}

/** A translate function for `lang` over another page's strings, `languages` = {en, "zh-Hans", ja}:
 * t(key, params) -> text, English where a key is missing. */
export function translatorFor(languages, lang) {
  const en = languages.en;
  const messages = languages[lang] || en;
  const plural = new Intl.PluralRules(lang);
  const t = function (key, params = {}) {
    let message = messages[key] ?? en[key];
    if (message === undefined) {
      console.error("no message for", key);
      return key;
    }
    if (typeof message === "object") message = message[plural.select(params.n ?? 0)] ?? message.other;
    return message.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  };
  t.has = (key) => key in messages || key in en;
  return t;
}

const ATTRIBUTES = ["aria-label", "title", "alt", "placeholder"];

/** Put the language into every element of `root` marked data-i18n / data-i18n-<attribute>. */
export function translateStatic(root, t) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ATTRIBUTES) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(el.getAttribute(`data-i18n-${attr}`)));
    }
  }
}
