"""Reading a Dockerfile's runtime settings, as the engine-less build does to match the Dockerfile.

If the reader misparsed a continuation, a quoted label or an ARG, `make image` would build an
image that starts differently from the Dockerfile's without anyone noticing; these pin the syntax
the project's Dockerfile uses.
"""

from __future__ import annotations

import pytest
from image import dockerfile

TEXT = """\
# a comment
FROM python:3.11-slim-bookworm AS builder
ENV A=builder
RUN echo one \\
    && echo two
USER 0

FROM debian:bookworm-slim
ARG VERSION=1.2.3
LABEL org.opencontainers.image.title="the title" \\
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/opt/bin:/usr/bin \\
    # a comment inside a continuation
    HOME=/tmp
ENV HOME=/home/app GREETING="hello world"
USER 65532:65532
WORKDIR /tmp
CMD ["old"]
ENTRYPOINT ["roadie"]
CMD ["run", "--flag"]
"""


def test_stages_split_on_from() -> None:
    stages = dockerfile.stages(TEXT)
    assert [stage[0].arguments for stage in stages] == ["python:3.11-slim-bookworm AS builder", "debian:bookworm-slim"]
    runs = [i.arguments for i in stages[0] if i.keyword == "RUN"]
    assert runs == ["echo one && echo two"]


def test_runtime_of_the_final_stage() -> None:
    runtime = dockerfile.runtime(TEXT)
    assert runtime.base == "debian:bookworm-slim"
    assert runtime.user == "65532:65532"
    assert runtime.working_dir == "/tmp"
    assert runtime.entrypoint == ("roadie",)
    assert runtime.cmd == ("run", "--flag")
    assert runtime.env_list() == ["PATH=/opt/bin:/usr/bin", "HOME=/home/app", "GREETING=hello world"]
    assert runtime.label_map() == {
        "org.opencontainers.image.title": "the title",
        "org.opencontainers.image.version": "1.2.3",
    }


def test_entrypoint_resets_an_earlier_cmd_and_shell_form_runs_sh() -> None:
    runtime = dockerfile.runtime("FROM x:1\nCMD echo hi\nENTRYPOINT /bin/app --x\n")
    assert runtime.entrypoint == ("/bin/sh", "-c", "/bin/app --x")
    assert runtime.cmd == ()
    assert runtime.working_dir == "/" and runtime.user == ""


def test_bad_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        dockerfile.runtime("FROM x:1\nENV LEGACY value\n")
    with pytest.raises(ValueError, match="JSON list"):
        dockerfile.runtime('FROM x:1\nCMD ["a", 1]\n')
