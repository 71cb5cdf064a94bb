#!/usr/bin/env node
// The product's AESEncryption (PRD §6.2, src/lib/crypto/aes-encryption.ts)
// as plain JavaScript, kept line for line, so that vetsync's credcrypt is
// tested against what Node's crypto module really does with that code.
// The one change: pbkdf2Sync is imported (the PRD's listing forgets it).
//
//   node aes-node.js encrypt KEYID   plaintext on stdin, JSON on stdout
//   node aes-node.js decrypt         JSON on stdin, plaintext on stdout
//   node aes-node.js vectors         tests/fixtures/credcrypt-vectors.json
//
// Keys come from ENCRYPTION_KEY_<id>, as in the PRD.  Errors go to stderr
// with exit status 1.
'use strict';

const { createCipheriv, createDecipheriv, randomBytes, pbkdf2Sync } =
    require('crypto');

class AESEncryption {
  algorithm = 'aes-256-gcm';
  keyDerivation = 'pbkdf2';

  async encrypt(text, keyId) {
    const key = await this.deriveKey(keyId);
    const iv = randomBytes(16);
    const cipher = createCipheriv(this.algorithm, key, iv);

    let encrypted = cipher.update(text, 'utf8', 'hex');
    encrypted += cipher.final('hex');
    const authTag = cipher.getAuthTag();

    return {
      encrypted,
      iv: iv.toString('hex'),
      authTag: authTag.toString('hex'),
      keyId
    };
  }

  async decrypt(data) {
    const key = await this.deriveKey(data.keyId);
    const decipher = createDecipheriv(
      this.algorithm,
      key,
      Buffer.from(data.iv, 'hex')
    );

    decipher.setAuthTag(Buffer.from(data.authTag, 'hex'));

    let decrypted = decipher.update(data.encrypted, 'hex', 'utf8');
    decrypted += decipher.final('utf8');

    return decrypted;
  }

  async deriveKey(keyId) {
    const secret = process.env[`ENCRYPTION_KEY_${keyId}`];
    if (!secret) throw new Error(`Key ${keyId} not found`);

    return pbkdf2Sync(secret, 'idexx-salt', 100000, 32, 'sha256');
  }
}

function readStdin() {
  return require('fs').readFileSync(0);
}

// The fixture: fixed test secrets (not secrets of any deployment), and
// plaintexts of every kind a credential may be.
const FIXTURE_KEYS = {
  'fixture-k1': 'vetsync fixture secret one',
  'Fixture_K2': 'second fixture secret, ünïcödé'
};

function fixturePlaintexts() {
  let kb = '';
  for (let i = 0; kb.length < 1024; i++)
    kb += String.fromCharCode(0x21 + (i * 7) % 94);
  return [
    '',
    'a',
    'vet@clinic.example',
    'P@ssw0rd! with spaces and "quotes" \\ and \t tab',
    'Ünïcödé пароль 密码 🐾🐕',
    kb.slice(0, 1024),
    '€'.repeat(100) + '𝄞'.repeat(50)
  ];
}

async function vectors() {
  for (const [id, secret] of Object.entries(FIXTURE_KEYS))
    process.env[`ENCRYPTION_KEY_${id}`] = secret;
  const aes = new AESEncryption();
  const out = [];
  const ids = Object.keys(FIXTURE_KEYS);
  const texts = fixturePlaintexts();
  for (let i = 0; i < texts.length; i++) {
    const keyId = ids[i % ids.length];
    const stored = JSON.stringify(await aes.encrypt(texts[i], keyId));
    if (await aes.decrypt(JSON.parse(stored)) !== texts[i])
      throw new Error('round trip failed');
    out.push({ keyId, plaintext: texts[i], stored });
  }
  return JSON.stringify({
    comment: 'made by tests/crypto/aes-node.js vectors (Node ' +
        process.version + '); secrets are test values',
    keys: FIXTURE_KEYS,
    vectors: out
  }, null, 1) + '\n';
}

async function main(argv) {
  const aes = new AESEncryption();
  if (argv[0] === 'encrypt' && argv.length === 2) {
    const text = readStdin().toString('utf8');
    process.stdout.write(JSON.stringify(await aes.encrypt(text, argv[1])) +
        '\n');
  } else if (argv[0] === 'decrypt' && argv.length === 1) {
    const data = JSON.parse(readStdin().toString('utf8'));
    process.stdout.write(await aes.decrypt(data));
  } else if (argv[0] === 'vectors' && argv.length === 1) {
    process.stdout.write(await vectors());
  } else {
    process.stderr.write('usage: aes-node.js encrypt KEYID | decrypt | ' +
        'vectors\n');
    process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`aes-node.js: ${e.message}\n`);
  process.exit(1);
});
