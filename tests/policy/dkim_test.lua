-- SPDX-License-Identifier: MIT
-- tern.dkim from policy: signer constructors, option and key errors, signer:sign,
-- and the lua/tern/dkim.lua helper. Keys are made by `tern dkim genkey`.
local t = require 'tern.testing'
local helper = require 'tern.dkim'

local build = os.getenv('TERN_BUILD') or 'build/rel'
local dir = os.tmpname()
os.remove(dir)
assert(os.execute(('mkdir -m 0700 %q'):format(dir)) == 0)

local function genkey(selector, algo)
  local cmd = ('%s/tern dkim genkey --domain example.com --selector %s --algo %s --out %q'):format(
    build, selector, algo, dir)
  local p = io.popen(cmd)
  local record = p:read('*a')
  p:close()
  return dir .. '/' .. selector .. '.example.com.key', record
end

local function write(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

local msg = 'From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n'

tern.on('main', function(args)
  local rsa_key, record = genkey('s1', 'rsa2048')
  local ed_key = genkey('e1', 'ed25519')
  t.ok(record:find('s1._domainkey.example.com. IN TXT', 1, true) ~= nil, 'genkey prints the TXT record')

  local rsa = tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1', key = rsa_key }
  t.eq(type(rsa), 'userdata', 'rsa_sha256_signer returns a signer')
  t.eq(tostring(rsa), 'tern.dkim.signer(d=example.com, s=s1)', 'a signer shows domain and selector')
  local sig = rsa:sign(msg)
  t.ok(sig:find('^DKIM%-Signature: v=1; a=rsa%-sha256; c=relaxed/relaxed;') ~= nil, 'signature starts with v=, a=, c=')
  t.ok(sig:find(' d=example.com;', 1, true) ~= nil, 'signature has d=')
  t.ok(sig:find(' s=s1;', 1, true) ~= nil, 'signature has s=')
  t.ok(sig:find('h=From:From:Subject:Subject:', 1, true) ~= nil, 'default headers are over-signed')
  t.eq(sig:sub(-2), '\r\n', 'signature field ends with CRLF')

  local ed = tern.dkim.ed25519_signer {
    domain = 'example.com', selector = 'e1', key = ed_key, headers = { 'From', 'To' },
    header_canonicalization = 'simple', body_canonicalization = 'relaxed', over_sign = false,
    expiration = '1h', identity = 'news@mail.example.com',
  }
  sig = ed:sign(msg)
  t.ok(sig:find('a=ed25519-sha256; c=simple/relaxed;', 1, true) ~= nil, 'ed25519 signer with simple/relaxed')
  t.ok(sig:find('h=From:To;', 1, true) ~= nil, 'headers option without over-signing')
  local ts, xs = sig:match('t=(%d+);'), sig:match('x=(%d+);')
  t.eq(tonumber(xs) - tonumber(ts), 3600, "expiration '1h' gives x = t + 3600")
  t.ok(sig:find('i=news@mail.example.com;', 1, true) ~= nil, 'identity becomes i=')
  local none, err = ed:sign('Subject: no from\r\n\r\nbody\r\n')
  t.ok(none == nil and err:find('no From', 1, true) ~= nil, 'an unsignable message gives nil, err')

  t.raises(function()
    tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1', key = rsa_key, foo = 1 }
  end, "unknown option 'foo' for tern.dkim.rsa_sha256_signer", 'unknown options are rejected by name')
  t.raises(function()
    tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1', key = dir .. '/missing.key' }
  end, dir .. '/missing.key', 'a missing key file is named')
  write(dir .. '/junk.key', 'not a key\n')
  t.raises(function()
    tern.dkim.ed25519_signer { domain = 'example.com', selector = 's1', key = dir .. '/junk.key' }
  end, dir .. '/junk.key', 'a malformed key file is named')
  t.raises(function()
    tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 'e1', key = ed_key }
  end, ed_key .. ': is not a key for rsa-sha256', 'a key of the wrong type is named')
  t.raises(function()
    tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1', key = rsa_key,
                                  body_canonicalization = 'loose' }
  end, "must be 'simple' or 'relaxed'", 'canonicalization values are checked')
  t.raises(function()
    tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1', key = rsa_key,
                                  expiration = 'soon' }
  end, "'soon' is not a duration", 'expiration must be a duration')

  -- lua/tern/dkim.lua
  local signing = helper.from_table {
    ['Example.com'] = { selector = 's1', key = rsa_key },
    ['example.net'] = { selector = 'e1', key = ed_key, algo = 'ed25519', over_sign = false },
    esp = { domain = 'example.com', selector = 'e1', key = ed_key, algo = 'ed25519' },
  }
  local list = signing:signers_for('EXAMPLE.COM')
  t.eq(#list, 1, 'own domain == esp domain: one signature')
  list = signing:signers_for('example.net')
  t.eq(#list, 2, 'own signature plus the ESP one')
  t.ok(list[1]:sign(msg):find('a=ed25519-sha256', 1, true) ~= nil, 'entry algo is used')
  t.ok(rawequal(signing:signers_for('example.net'), list), 'signers are memoized')
  local other = signing:signers_for('unknown.org')
  t.eq(#other, 1, 'an unknown domain gets only the ESP signature')
  t.ok(rawequal(other[1], list[2]), 'the ESP signer is shared')
  t.eq(#helper.from_table({ ['a.example'] = { selector = 's', key = rsa_key } }):signers_for('b.example'), 0,
       'no entry and no ESP: no signers')
  t.raises(function() helper.from_table { ['a.example'] = { selector = 's' } } end,
           'needs selector and key', 'from_table checks entries')
  t.raises(function() helper.from_table { ['a.example'] = { selector = 's', key = 'k', algo = 'dsa' } } end,
           "algo must be 'rsa' or 'ed25519'", 'from_table checks algo')
  t.raises(function()
    helper.from_table({ ['a.example'] = { selector = 's', key = rsa_key, colour = 'red' } }):signers_for('a.example')
  end, "unknown option 'colour'", 'entry options are checked by the signer')

  os.execute(('rm -rf %q'):format(dir))
  return t.done()
end)
