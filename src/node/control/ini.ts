/**
 * A small INI parser for the operator's config file (`/etc/<name>/config.ini`, Kazoo's format),
 * read for the cookie (cookie.ts). No dependency: this file ships inside every release.
 *
 *   ; a comment            # also a comment
 *   [ecallmgr]             a section; the same name may appear again (Kazoo writes a generic
 *   cookie = change_me     [ecallmgr] and a host-specific one with `host = ...`), so sections
 *   [ecallmgr]             are returned as a list, in file order, never merged
 *   host = "kazoo1.example.com"
 *
 * Keys and values are trimmed. A value wholly in matching quotes ("..." or '...') is taken
 * verbatim without them; in an unquoted value, `;` or `#` at its start or after whitespace
 * starts a comment.
 * A key repeated within one section keeps its last value. Every malformed line is a
 * BootError('EINI') naming `file:line` and what was expected.
 *
 * Why not the `ini` package: it merges a repeated section into one object (the host rule needs
 * each `[ecallmgr]` apart), and it keeps no line numbers, which every message here names (the
 * section's line, each key's line, the malformed line); a layer that split the sections and
 * tracked lines itself would leave `ini` only `key = value`, the part this file does in a few
 * lines. So the parser stays ours, and the package is not a dependency.
 */
import { BootError } from '../errors.js';

export interface IniSection {
  readonly name: string;
  /** 1-based line of the `[name]` header. */
  readonly line: number;
  readonly entries: Record<string, string>;
  /** 1-based line of each key (the last one when a key is repeated), for messages. */
  readonly keyLines: Record<string, number>;
}

export function parseIni(text: string, file: string): IniSection[] {
  const sections: IniSection[] = [];
  let current: IniSection | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const where = `${file}:${line}`;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) return;

    if (trimmed.startsWith('[')) {
      const header = /^\[([^\]]*)\]\s*(?:[;#].*)?$/.exec(trimmed);
      if (!header) {
        throw new BootError('EINI', `${where}: malformed section header ${JSON.stringify(trimmed)}; expected [name]`);
      }
      const name = header[1]!.trim();
      if (name === '') throw new BootError('EINI', `${where}: empty section name []; expected [name]`);
      current = { name, line, entries: Object.create(null) as Record<string, string>, keyLines: Object.create(null) as Record<string, number> };
      sections.push(current);
      return;
    }

    const eq = trimmed.indexOf('=');
    if (eq < 0) {
      throw new BootError('EINI', `${where}: expected key = value or [section], found ${JSON.stringify(trimmed)}`);
    }
    const key = trimmed.slice(0, eq).trim();
    if (key === '') throw new BootError('EINI', `${where}: no key before "="; expected key = value`);
    if (!current) throw new BootError('EINI', `${where}: key outside any section; put it under [section]`);
    current.entries[key] = iniValue(trimmed.slice(eq + 1).trim());
    current.keyLines[key] = line;
  });
  return sections;
}

/** The value of `key = <raw>` (raw already trimmed): quotes stripped, or inline comment cut. */
function iniValue(raw: string): string {
  const quote = raw[0];
  if (quote === '"' || quote === "'") {
    const close = raw.indexOf(quote, 1);
    if (close > 0) {
      const rest = raw.slice(close + 1).trim();
      if (rest === '' || rest.startsWith(';') || rest.startsWith('#')) return raw.slice(1, close);
    }
  }
  return raw.replace(/(^|\s)[;#].*$/, '').trim();
}
