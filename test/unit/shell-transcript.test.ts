// The transcript format: entries out as lines, lines back as entries, and what is not a transcript.
import { describe, expect, it } from 'vitest';
import { entryLines, parseTranscript, TranscriptError } from '../../src/shell/transcript.ts';

const HEAD = '#! tcefs-transcript 1 tcefs 0.1.0\n#! topology powernv 64K; PHB4 domain 0: group 1 = domain0-pe2 [0000:02:00.0]\n';

describe('transcripts', () => {
  it('write an entry as a request line, a response line and the text a cat read', () => {
    expect(entryLines({ request: 'cat x', response: '0', body: ['# a', ''] })).toEqual(['> cat x', '< 0', '<| # a', '<| ']);
    expect(entryLines({ request: 'c VFIO_CHECK_EXTENSION arg=7', response: '1' })).toEqual(['> c VFIO_CHECK_EXTENSION arg=7', '< 1']);
  });

  it('read back what they wrote, with comments and blank lines around', () => {
    const text = HEAD + [
      '# setting up', '', ...entryLines({ request: 'open c dev/vfio/vfio', response: '0' }),
      ...entryLines({ request: 'cat sys/kernel/debug/tcefs/groups/1/tce', response: '0', body: ['# domain0-pe2 group 1', ''] }),
      '<|', // an editor may strip the blank after <|
    ].join('\n') + '\n';
    const t = parseTranscript(text);
    expect(t.version).toBe(1);
    expect(t.tcefs).toBe('0.1.0');
    expect(t.topology).toBe('powernv 64K; PHB4 domain 0: group 1 = domain0-pe2 [0000:02:00.0]');
    expect(t.entries).toEqual([
      { line: 5, request: 'open c dev/vfio/vfio', response: '0' },
      { line: 7, request: 'cat sys/kernel/debug/tcefs/groups/1/tce', response: '0', body: ['# domain0-pe2 group 1', '', ''] },
    ]);
  });

  it('refuse what is not a transcript, or not one this tcefs reads, saying where', () => {
    expect(() => parseTranscript('> open c dev/vfio/vfio\n< 0\n')).toThrow(/no "#! tcefs-transcript N" header/);
    expect(() => parseTranscript('#! tcefs-transcript 2\n')).toThrow(/version 2/);
    expect(() => parseTranscript(HEAD + '< 0\n')).toThrow(/line 3: a response without its request/);
    expect(() => parseTranscript(HEAD + '> a\n< 0\n< 1\n')).toThrow(/line 5: a response without its request/);
    expect(() => parseTranscript(HEAD + '> a\n')).toThrow(/line 3: request without a response/);
    expect(() => parseTranscript(HEAD + 'open c x\n')).toThrow(TranscriptError);
  });
});
