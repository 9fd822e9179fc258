#!/usr/bin/env python3
"""Writes a file's bytes as a NUL-terminated C array (PTX text for cuModuleLoadData).

An array rather than a string literal: ISO C compilers need only take 4095-character
literals, and the build is -Wpedantic -Werror."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, 'rb').read() + b'\0'
with open(out, 'w') as f:
    f.write('/* Generated from %s by embed.py. */\n#include <stddef.h>\n\n' % src.split('/')[-1])
    f.write('extern const unsigned char %s[];\nextern const size_t %s_size;\n\n' % (name, name))
    f.write('const unsigned char %s[] = {\n' % name)
    for i in range(0, len(data), 16):
        f.write('    ' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',\n')
    f.write('};\nconst size_t %s_size = sizeof(%s);\n' % (name, name))
