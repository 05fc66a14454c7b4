# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    ImagePusherError,
    InvalidOptionError,
    InvalidReferenceError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror_entries import ENTRY_DEFAULTS, settle_entries

ENTRY_KEYS = ("platforms", "source_username", "source_password", "source_plain_http",
              "target_username", "target_password", "target_plain_http", "referrers")


def entry(source="127.0.0.1:5000/team/app:v1", target="127.0.0.1:5001/mirror/app", **options):
    """An entry as Ansible hands it over: every suboption present, None when not given."""
    result = dict((key, None) for key in ENTRY_KEYS)
    result.update(source=source, target=target, **options)
    return result


def params(*images, **module_wide):
    """Module params as Ansible hands them over (image_mirror's defaults)."""
    result = dict(images=list(images), platforms=None, source_username=None, source_password=None,
                  source_plain_http=False, username=None, password=None, plain_http=False, referrers=False)
    result.update(module_wide)
    return result


def test_every_entry_option_has_a_module_wide_default():
    assert sorted(ENTRY_DEFAULTS) == sorted(ENTRY_KEYS)
    assert ENTRY_DEFAULTS["target_username"] == "username"
    assert ENTRY_DEFAULTS["target_password"] == "password"
    assert ENTRY_DEFAULTS["target_plain_http"] == "plain_http"


def test_references_are_parsed_and_the_target_keeps_the_source_tag():
    [(source, target, options)] = settle_entries(params(entry()))
    assert str(source) == "127.0.0.1:5000/team/app:v1"
    assert str(target) == "127.0.0.1:5001/mirror/app:v1"
    assert options["source"] == "127.0.0.1:5000/team/app:v1"


def test_a_target_tag_given_is_kept_and_docker_hub_names_are_normalized():
    [(source, target, _options)] = settle_entries(params(entry(source="nginx", target="127.0.0.1:5001/x/nginx:stable")))
    assert str(source) == "docker.io/library/nginx:latest"
    assert str(target) == "127.0.0.1:5001/x/nginx:stable"


def test_module_wide_options_fill_what_an_entry_leaves_out():
    settled = settle_entries(params(entry(), platforms=["linux/amd64"], source_username="reader", source_password="r",
                                    source_plain_http=True, username="writer", password="w", plain_http=True))
    options = settled[0][2]
    assert options["platforms"] == ["linux/amd64"]
    assert (options["source_username"], options["source_password"], options["source_plain_http"]) == ("reader", "r", True)
    assert (options["target_username"], options["target_password"], options["target_plain_http"]) == ("writer", "w", True)


def test_an_entry_overrides_key_by_key():
    # Only a password in the entry: the module-wide user name is used with it.
    image = entry(target_password="entry-secret", platforms=["linux/arm64"], target_plain_http=False)
    [(_s, _t, options)] = settle_entries(params(image, username="writer", password="module-secret", plain_http=True,
                                                platforms=["linux/amd64"]))
    assert options["target_username"] == "writer"
    assert options["target_password"] == "entry-secret"
    assert options["platforms"] == ["linux/arm64"]
    assert options["target_plain_http"] is False  # False is a value, not "left out"


def test_entries_are_completed_in_place_and_kept_in_order():
    first, second = entry(), entry(source="127.0.0.1:5000/team/db:v2", target="127.0.0.1:5001/mirror/db")
    given = params(first, second, source_plain_http=True)
    settled = settle_entries(given)
    assert [str(s) for s, _t, _o in settled] == ["127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/db:v2"]
    assert settled[0][2] is first and settled[1][2] is second
    assert given["images"][1]["source_plain_http"] is True


@pytest.mark.parametrize("options, module_wide, message", [
    ({"target_username": "bot"}, {},
     "images[0]: the target registry has a user name but no password (neither in the entry nor module-wide)"),
    ({"target_password": "s3cret"}, {},
     "images[0]: the target registry has a password but no user name (neither in the entry nor module-wide)"),
    ({}, {"source_username": "bot"},
     "images[0]: the source registry has a user name but no password (neither in the entry nor module-wide)"),
    ({}, {"password": "s3cret"},
     "images[0]: the target registry has a password but no user name (neither in the entry nor module-wide)"),
])
def test_half_a_credential_pair_is_refused(options, module_wide, message):
    with pytest.raises(InvalidOptionError) as raised:
        settle_entries(params(entry(**options), **module_wide))
    assert raised.value.message == message
    assert "s3cret" not in str(raised.value)


def test_the_source_side_is_checked_before_the_target_side():
    with pytest.raises(InvalidOptionError) as raised:
        settle_entries(params(entry(source_username="a", target_username="b")))
    assert raised.value.message.startswith("images[0]: the source registry has a user name")


def test_a_bad_source_names_the_entry_option():
    with pytest.raises(InvalidReferenceError) as raised:
        settle_entries(params(entry(source="Not A/Reference!")))
    assert raised.value.message.startswith("images[0].source: Invalid image reference 'Not A/Reference!'")
    assert raised.value.details["reference"] == "'Not A/Reference!'"


def test_a_bad_target_names_its_entry_and_earlier_good_entries_do_not_hide_it():
    with pytest.raises(InvalidReferenceError) as raised:
        settle_entries(params(entry(), entry(target="Not A/Target!")))
    assert raised.value.message.startswith("images[1].target: Invalid image reference 'Not A/Target!'")
    assert "images[0]" not in raised.value.message


def test_the_first_bad_entry_wins():
    with pytest.raises(ImagePusherError) as raised:
        settle_entries(params(entry(target_username="bot"), entry(source="Not A/Reference!")))
    assert raised.type is InvalidOptionError
    assert raised.value.message.startswith("images[0]:")


def test_credentials_are_checked_before_references():
    with pytest.raises(InvalidOptionError):
        settle_entries(params(entry(source="Not A/Reference!", source_password="x")))


def test_an_empty_list_settles_to_nothing():
    assert settle_entries(params()) == []


def test_referrers_entry_wins_over_the_module_wide_option():
    settled = settle_entries(params(entry(), entry(referrers=False), referrers=True))
    assert [options["referrers"] for _s, _t, options in settled] == [True, False]
