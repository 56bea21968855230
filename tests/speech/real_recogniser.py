"""Speech to text through a real recogniser (CONTRACT 10.4), end to end and offline.

espeak-ng speaks "hello world" into a WAV file; a small OpenAI-compatible transcription server
(`POST /v1/audio/transcriptions`, multipart `file`) runs PocketSphinx on what it is sent; confab
(the binary given as the first argument, started here on free ports) is pointed at it with
--speech-url; the WAV is posted to confab's /speech:transcribe with a user token, and the text
must come back as "hello world". Exits non-zero on any failure.
"""
import audioop  # noqa: deprecated in 3.11 but present; resampling 22.05 kHz -> 16 kHz
import base64
import email.parser
import email.policy
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from pocketsphinx import Decoder

SENTENCE = "hello world"
# The voice and rate at which this recogniser, untrained on synthetic speech, hears it.
ESPEAK = ["espeak-ng", "-v", "en-us+m3", "-s", "120"]


def recognise(wav_bytes):
    w = wave.open(io.BytesIO(wav_bytes))
    pcm = w.readframes(w.getnframes())
    if w.getnchannels() == 2:
        pcm = audioop.tomono(pcm, w.getsampwidth(), 0.5, 0.5)
    pcm, _ = audioop.ratecv(pcm, w.getsampwidth(), 1, w.getframerate(), 16000, None)
    silence = b"\0\0" * 8000
    decoder = Decoder(samprate=16000)
    decoder.start_utt()
    decoder.process_raw(silence + pcm + silence, full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() else ""


class Transcriber(BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path != "/v1/audio/transcriptions":
            self.send_response(404)
            self.end_headers()
            return
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        audio = parts["file"].get_payload(decode=True)
        Transcriber.seen.append({name: p.get_content_type() for name, p in parts.items()})
        text = recognise(audio)
        out = json.dumps({"text": text}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def signed(base, key, method, path, body):
    url = urlparse(base + path)
    date = formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    to_sign = f"{method}\n{url.path}?{url.query}\n{date};{url.netloc};{digest}"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(base + path, data=body.encode(), method=method, headers={
        "content-type": "application/json", "x-ms-date": date, "x-ms-content-sha256": digest,
        "authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}",
    })
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def main(binary):
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "hello.wav")
        subprocess.run(ESPEAK + ["-w", wav, SENTENCE], check=True)
        audio = open(wav, "rb").read()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Transcriber)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        speech_url = f"http://127.0.0.1:{server.server_address[1]}"
        log = open(os.path.join(tmp, "confab.log"), "w+")
        confab = subprocess.Popen([
            binary, "serve", "--http-port", "0", "--no-tls", "--admin-addr", "127.0.0.1:0",
            "--data-dir", os.path.join(tmp, "data"), "--log", "warn",
            "--speech-url", speech_url, "--speech-kind", "openai", "--speech-allow-private",
        ], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 20
            banner = ""
            while time.time() < deadline:
                log.seek(0)
                banner = log.read()
                if "accesskey=" in banner and "http " in banner:
                    break
                time.sleep(0.1)
            base = re.search(r"^  http +: (http://\S+?)/?\s", banner, re.M).group(1)
            key = re.search(r"accesskey=(\S+)", banner).group(1)
            identity = signed(base, key, "POST", "/identities?api-version=2023-10-01",
                              json.dumps({"createTokenWithScopes": ["chat"]}))
            token = identity["accessToken"]["token"]
            req = urllib.request.Request(f"{base}/speech:transcribe?language=en-US", data=audio, method="POST",
                                         headers={"authorization": f"Bearer {token}", "content-type": "audio/wav"})
            started = time.time()
            with urllib.request.urlopen(req) as r:
                status, answer = r.status, json.load(r)
            print(f"confab answered {status} {answer} in {time.time() - started:.2f} s; "
                  f"the transcriber got parts {Transcriber.seen}")
            assert status == 200, status
            assert answer["text"].strip().lower() == SENTENCE, answer
            assert Transcriber.seen and Transcriber.seen[0]["file"] == "audio/wav", Transcriber.seen
        finally:
            confab.terminate()
            confab.wait(timeout=30)
            server.shutdown()
    print("ok: a spoken sentence came back as text through confab and a real recogniser")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/debug/confab")
