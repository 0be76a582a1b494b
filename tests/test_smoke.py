from tests.twiml import messages, one_message


def test_signed_request_is_answered(send):
    assert "HER2" in one_message(send("HER2"))


def test_stop_is_silent(send):
    assert messages(send("STOP")) == []
