"""The package's names: each one in ``__all__`` resolves (they are imported on first use,
so that ``python -m warden_client.generate`` runs before the stubs exist)."""

import warden_client


def test_every_exported_name_resolves():
    assert sorted(warden_client.__all__) == sorted(warden_client._HOME)
    for name in warden_client.__all__:
        assert getattr(warden_client, name) is not None, name


def test_an_unknown_name_is_an_attribute_error():
    try:
        warden_client.NoSuchThing  # noqa: B018 - the access is the test
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("an unknown name resolved")
