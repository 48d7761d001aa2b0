// The page language: chosen once from the browser (or the saved choice), switched by the user.
// Translated elements carry their key (`data-i18n`, `data-i18n-placeholder`, `data-i18n-aria-label`,
// `data-i18n-title`) and their parameters (`data-i18n-params`, JSON), so a switch re-translates
// everything, including answers already on the page.

import { LANGUAGES, STRINGS } from "./strings.js";

const LANG_KEY = "rag-serve-lang";
const ATTRIBUTE_SLOTS = { placeholder: "i18nPlaceholder", "aria-label": "i18nAriaLabel", title: "i18nTitle" };
let current = "en";

export function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && saved in STRINGS) return saved;
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const lower = (tag || "").toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function language() {
  return current;
}

export function t(key, params = {}) {
  const table = STRINGS[current] || STRINGS.en;
  const text = table[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// Set `el`'s text (or an attribute) to a translated string and remember the key for later switches.
export function tr(el, key, params, attribute) {
  const slot = attribute ? ATTRIBUTE_SLOTS[attribute] : "i18n";
  el.dataset[slot] = key;
  if (params) el.dataset.i18nParams = JSON.stringify(params);
  if (attribute) el.setAttribute(attribute, t(key, params));
  else el.textContent = t(key, params);
  return el;
}

export function setLanguage(lang, remember) {
  current = lang in STRINGS ? lang : "en";
  if (remember) localStorage.setItem(LANG_KEY, current);
  document.documentElement.lang = current;
  for (const el of document.querySelectorAll("[data-i18n], [data-i18n-placeholder], [data-i18n-aria-label], [data-i18n-title]")) {
    const params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : {};
    if (el.dataset.i18n) el.textContent = t(el.dataset.i18n, params);
    if (el.dataset.i18nPlaceholder) el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder, params));
    if (el.dataset.i18nAriaLabel) el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel, params));
    if (el.dataset.i18nTitle) el.setAttribute("title", t(el.dataset.i18nTitle, params));
  }
}

export function fillLanguageSelect(select) {
  select.replaceChildren(
    ...Object.entries(LANGUAGES).map(([value, name]) => {
      const option = new Option(name, value);
      option.lang = value;
      return option;
    }),
  );
  select.value = current;
}
