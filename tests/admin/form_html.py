"""Reading a rendered admin form's HTML as the clerk sees it: each field's block, the banners."""

import re


def field_block(html: str, name: str) -> str:
    """The HTML of one form field's block in a rendered form: label, input, its errors, help."""
    blocks = re.split(r'<div class="(?:errors )?form-field ', html)
    [block] = [block for block in blocks[1:] if f'name="{name}"' in block]
    return block


def top_errors(html: str) -> list[str]:
    """The texts of the error banners above the form's fields."""
    return [
        " ".join(text.split())
        for text in re.findall(r'<div class="errornote[^"]*">(.*?)</div>', html, re.S)
    ]
