"""Handoff: chunks pass from a download thread to an upload thread in order, and never get lost."""

import hashlib
import threading

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import Handoff, HandoffBroken

CHUNKS = (b"a" * 5, b"b" * 3, b"c" * 7)
LENGTH = sum(len(c) for c in CHUNKS)


def consume(handoff, out, finish_wait=True):
    """What an HTTP body reader does: read until b'', copying each block before asking again."""
    try:
        while True:
            block = handoff.read(8192)
            if not block:
                break
            out.append(bytes(block))
        if finish_wait:
            out.append(handoff.wait_finished())
    except HandoffBroken as exc:
        out.append(exc)
    finally:
        handoff.release()


def produce(handoff, chunks, start=0):
    """What the cache ingest (_download) does: one reused buffer, offered, hashed while it is sent,
    and overwritten as soon as wait_sent() returns."""
    buffer = bytearray(16)
    offset = start
    for chunk in chunks:
        buffer[:len(chunk)] = chunk
        handoff.offer(offset, memoryview(buffer)[:len(chunk)])
        hashlib.sha256(buffer[:len(chunk)])  # the download's own work on the chunk meanwhile
        handoff.wait_sent()
        buffer[:] = b"X" * 16  # reused at once: the consumer must have sent it already
        offset += len(chunk)


def run(consumer_first, chunks=CHUNKS, finish=True):
    handoff = Handoff(LENGTH)
    out = []
    consumer = threading.Thread(target=consume, args=(handoff, out))
    if consumer_first:
        consumer.start()
    producer = threading.Thread(target=produce, args=(handoff, chunks))
    producer.start()
    if not consumer_first:
        producer.join(0.2)  # the producer gets ahead: its first wait_sent() must still wait
        consumer.start()
    producer.join(5)
    assert not producer.is_alive()
    if finish:
        handoff.finish()
    consumer.join(5)
    assert not consumer.is_alive()
    return handoff, out


@pytest.mark.parametrize("consumer_first", [True, False])
def test_every_chunk_arrives_in_order_and_unchanged_whoever_starts_first(consumer_first):
    _handoff, out = run(consumer_first)
    assert out == list(CHUNKS) + [True]


def test_a_download_that_starts_over_breaks_the_handoff():
    handoff = Handoff(LENGTH)
    out = []
    consumer = threading.Thread(target=consume, args=(handoff, out))
    consumer.start()
    produce(handoff, CHUNKS[:1])
    produce(handoff, CHUNKS, start=0)  # offset 0 again: a fresh download after a mismatch
    consumer.join(5)
    assert out[0] == CHUNKS[0]
    assert isinstance(out[1], HandoffBroken) and "started over at byte 0" in str(out[1])


def test_an_aborted_download_wakes_a_waiting_upload():
    handoff = Handoff(LENGTH)
    out = []
    consumer = threading.Thread(target=consume, args=(handoff, out))
    consumer.start()
    produce(handoff, CHUNKS[:1])
    handoff.abort("the download failed")
    consumer.join(5)
    assert not consumer.is_alive()
    assert out[0] == CHUNKS[0] and str(out[1]) == "the download failed"


def test_a_download_that_hands_over_too_little_never_lets_the_upload_complete():
    handoff = Handoff(LENGTH + 1)
    out = []
    consumer = threading.Thread(target=consume, args=(handoff, out))
    consumer.start()
    produce(handoff, CHUNKS)
    handoff.finish()
    consumer.join(5)
    assert out[:3] == list(CHUNKS)
    assert isinstance(out[3], HandoffBroken) and "handed over 15 of 16 bytes" in str(out[3])


def test_more_bytes_than_announced_break_the_handoff():
    handoff = Handoff(4)
    out = []
    consumer = threading.Thread(target=consume, args=(handoff, out))
    consumer.start()
    produce(handoff, [b"12345"])
    handoff.finish()
    consumer.join(5)
    assert isinstance(out[0], HandoffBroken)


def test_an_upload_that_stops_never_keeps_the_download_waiting():
    handoff = Handoff(LENGTH)
    taken = []

    def consumer():
        taken.append(bytes(handoff.read()))
        handoff.release("the registry refused the upload")  # failed while sending the first chunk

    thread = threading.Thread(target=consumer)
    thread.start()
    produce(handoff, CHUNKS)  # returns: offers after the release are ignored
    thread.join(5)
    assert taken == [CHUNKS[0]]
    assert not handoff.wait_finished()


def test_a_started_stream_cannot_be_rewound():
    handoff = Handoff(LENGTH)
    handoff.seek_start()  # nothing sent yet (a 401 before the body): fine
    out = []
    consumer = threading.Thread(target=lambda: out.append(bytes(handoff.read())))
    consumer.start()
    producer = threading.Thread(target=produce, args=(handoff, CHUNKS[:1]))
    producer.start()
    consumer.join(5)
    with pytest.raises(HandoffBroken, match="start over"):
        handoff.seek_start()
    handoff.release()
    producer.join(5)
    assert not producer.is_alive()


def test_len_is_the_announced_length():
    assert len(Handoff(12345)) == 12345


def test_the_download_outcome_is_kept_apart_from_a_broken_stream():
    # The upload failed early; the download went on into the cache and verified the blob.
    handoff = Handoff(LENGTH)
    handoff.release("the registry refused the upload")
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(handoff.wait_download()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the download has not ended yet: wait for it
    produce(handoff, CHUNKS)
    handoff.finish()
    waiter.join(5)
    assert outcome == [True]  # the blob is in the cache: upload it from there
    assert not handoff.wait_finished()  # the stream itself stays broken


def test_a_failed_download_leaves_nothing_to_fall_back_on():
    handoff = Handoff(LENGTH)
    handoff.release("the registry refused the upload")
    handoff.abort("the download failed")
    assert handoff.wait_download() is False


def test_an_offered_chunk_is_sent_while_the_producer_still_works_on_it():
    """offer() returns at once (the download hashes and writes the chunk meanwhile); wait_sent() returns
    only once the upload asked for the next block, so the buffer is never overwritten under it."""
    handoff = Handoff(LENGTH)
    got, asked_again = [], threading.Event()

    def upload():
        got.append(bytes(handoff.read()))
        asked_again.set()
        got.append(bytes(handoff.read()))

    buffer = bytearray(CHUNKS[0])
    handoff.offer(0, memoryview(buffer))  # returns with no consumer yet
    waiter = threading.Thread(target=handoff.wait_sent)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # nobody took the chunk: the buffer is still lent out
    consumer = threading.Thread(target=upload)
    consumer.start()
    asked_again.wait(5)
    waiter.join(5)
    assert not waiter.is_alive() and got == [CHUNKS[0]]
    buffer[:] = b"X" * len(buffer)  # free to reuse now
    handoff.offer(len(CHUNKS[0]), memoryview(bytearray(CHUNKS[1])))
    consumer.join(5)
    assert got == [CHUNKS[0], CHUNKS[1]]
    handoff.release()  # the upload stops here: the producer is never kept waiting
    handoff.wait_sent()
