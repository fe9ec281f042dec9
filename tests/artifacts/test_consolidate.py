"""Consolidation of one answer's code blocks (a pure function over extracted blocks): the
pieces of one file become one file, and what comes out still parses."""

from __future__ import annotations

import ast

from server.artifacts.consolidate import consolidate
from server.artifacts.extract import extract_code_blocks


def files(markdown: str) -> dict[str, str]:
    return {block.filename: block.content for block in consolidate(extract_code_blocks(markdown))}


PYTHON_IN_THREE_PIECES = '''First the model:

```python
# file: app.py
import os
from dataclasses import dataclass


@dataclass
class User:
    """A user.

Docstring lines without indentation stay inside their class.
"""

    name: str
```

Then the greeting, which needs `sys` too:

```python
# file: app.py
import os
import sys


def greet(user: User) -> str:
    return f"hello {user.name}"
```

And the entry point, with a friendlier greeting:

```python
# file: app.py
from __future__ import annotations

if __name__ == "__main__":
    print(greet(User(sys.argv[1])))


def greet(user: User) -> str:
    return "hi " + user.name
```
'''


def test_three_pieces_of_one_python_file_become_one_file() -> None:
    merged = files(PYTHON_IN_THREE_PIECES)

    assert list(merged) == ["app.py"]
    source = merged["app.py"]
    assert source == (
        "from __future__ import annotations\n"
        "import os\n"
        "from dataclasses import dataclass\n"
        "import sys\n"
        "\n\n"
        "@dataclass\n"
        "class User:\n"
        '    """A user.\n'
        "\n"
        "Docstring lines without indentation stay inside their class.\n"
        '"""\n'
        "\n"
        "    name: str\n"
        "\n\n"
        "def greet(user: User) -> str:\n"
        '    return "hi " + user.name\n'
        "\n\n"
        'if __name__ == "__main__":\n'
        "    print(greet(User(sys.argv[1])))\n"
    )
    ast.parse(source)


def test_the_merged_block_keeps_the_first_blocks_title_and_name() -> None:
    (block,) = consolidate(extract_code_blocks(PYTHON_IN_THREE_PIECES))
    assert (block.filename, block.title, block.language, block.named) == (
        "app.py",
        "First the model",
        "python",
        True,
    )
    assert block.complete


def test_unnamed_blocks_of_one_language_make_one_file() -> None:
    answer = """```js
const add = (a, b) => a + b;
```

Usage:

```js
console.log(add(1, 2));
```
"""
    assert files(answer) == {"main.js": "const add = (a, b) => a + b;\n\nconsole.log(add(1, 2));\n"}


def test_imports_of_one_module_are_merged_and_a_redefined_component_replaced() -> None:
    answer = """```tsx
import React from "react";

export function Title() {
  return <h1>Hi</h1>;
}

export default function App() {
  return <Title />;
}
```

Now with a counter:

```tsx
import React, { useState } from 'react';

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <button onClick={() => setCount(count + 1)}>
      <Title /> {count}
    </button>
  );
}
```
"""
    assert files(answer) == {
        "App.tsx": """import React, { useState } from "react";

export function Title() {
  return <h1>Hi</h1>;
}

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <button onClick={() => setCount(count + 1)}>
      <Title /> {count}
    </button>
  );
}
"""
    }


def test_a_later_block_with_every_definition_is_a_rewrite() -> None:
    answer = """```python
# file: calc.py
def add(a, b):
    return a + b

print(add(1, 2))
```

The whole file again, reading its arguments:

```python
# file: calc.py
import sys


def add(a, b):
    return a + b


print(add(int(sys.argv[1]), int(sys.argv[2])))
```
"""
    source = files(answer)["calc.py"]
    assert "print(add(1, 2))" not in source
    assert source.startswith("import sys\n")
    assert source.count("def add") == 1


def test_repeated_statements_are_kept_once_and_comments_stay_with_their_code() -> None:
    answer = """```css
/* the page */
body { margin: 0; }
```

```css
/* the page, darker */
body {
  margin: 0;
  background: #111;
}

h1 { color: white; }
```
"""
    assert files(answer) == {
        "styles.css": "/* the page, darker */\nbody {\n  margin: 0;\n  background: #111;\n}"
        "\n\nh1 { color: white; }\n"
    }


def test_blocks_that_cannot_be_merged_stay_apart_or_the_last_wins() -> None:
    answer = """```json
{"a": 1}
```

```json
{"b": 2}
```

```yaml
# file: config.yaml
debug: true
```

```yaml
# file: config.yaml
debug: false
```
"""
    assert files(answer) == {
        "data.json": '{"a": 1}\n',
        "data_2.json": '{"b": 2}\n',
        "config.yaml": "debug: false\n",
    }


def test_different_files_and_single_blocks_pass_through_unchanged() -> None:
    answer = """```python
# file: util.py
def double(x):
    return 2 * x
```

```python
# file: app.py
from util import double
print(double(2))
```
"""
    blocks = extract_code_blocks(answer)
    assert consolidate(blocks) == blocks


def test_an_answer_cut_short_inside_a_piece_marks_the_file_incomplete() -> None:
    answer = """```python
# file: app.py
def one():
    return 1
```

```python
# file: app.py
def two():
    return 2"""
    (block,) = consolidate(extract_code_blocks(answer))
    assert not block.complete
    assert "def one" in block.content
    assert "def two" in block.content
