"""`leadheat users create | list`, as a process: the password comes from stdin (or a prompt),
never from the command line."""

import os
import subprocess
import sys

from app.team import service


def leadheat(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, "LEADHEAT_DATABASE_URL": database_url},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_create_then_list_people(database_url, session, site):
    create = ["users", "create", "--site", "Fridge shop", "--email", "Anna@Shop.example"]
    done = leadheat(
        database_url, *create, "--role", "admin", "--password-stdin", stdin="s3cret enough\n"
    )
    assert done.returncode == 0, done.stderr
    assert "anna@shop.example" in done.stdout
    matched = await service.check_password(
        session, "anna@shop.example", "s3cret enough", [site.site.id]
    )
    assert [user.role for user in matched] == ["admin"]

    again = leadheat(database_url, *create, "--role", "manager", "--password-stdin", stdin="x" * 9)
    assert again.returncode == 2
    assert "already has" in again.stderr

    listed = leadheat(database_url, "users", "list", "--site", str(site.site.id))
    assert listed.returncode == 0, listed.stderr
    assert "anna@shop.example  admin  active  on duty" in listed.stdout
    assert "argon2" not in listed.stdout


async def test_no_terminal_and_no_stdin_flag_is_refused(database_url, site):
    done = leadheat(
        database_url,
        "users",
        "create",
        "--site",
        "Fridge shop",
        "--email",
        "a@shop.example",
        "--role",
        "manager",
    )
    assert done.returncode == 2
    assert "--password-stdin" in done.stderr


async def test_a_short_password_or_unknown_site_is_refused(database_url, site):
    base = ["users", "create", "--email", "a@shop.example", "--role", "manager", "--password-stdin"]
    short = leadheat(database_url, *base, "--site", "Fridge shop", stdin="short\n")
    assert short.returncode == 2
    assert "password" in short.stderr
    nowhere = leadheat(database_url, *base, "--site", "No such shop", stdin="long enough\n")
    assert nowhere.returncode == 2
    assert "No site" in nowhere.stderr
