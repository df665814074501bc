use super::*;

#[test]
fn a_status_without_warden_error_is_sorted_by_what_it_says_about_the_request() {
    let h2 = "h2 protocol error: error reading a body from connection";
    let table = [
        (Status::resource_exhausted(h2), Failure::MaybeSent),
        (Status::internal(h2), Failure::MaybeSent),
        (Status::unknown("transport error"), Failure::MaybeSent),
        (Status::cancelled("no answer within 10s"), Failure::MaybeSent),
        (Status::unavailable("tcp connect error: Connection refused"), Failure::NotSent),
        (Status::unimplemented(""), Failure::Refused),
        (
            Status::out_of_range(
                "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes",
            ),
            Failure::TooLarge,
        ),
    ];
    for (status, expected) in table {
        assert_eq!(failure(&status), expected, "{status:?}");
    }
}

#[test]
fn the_error_of_a_message_too_large_names_the_limit_hit() {
    let status = Status::out_of_range(
        "Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes",
    );
    assert!(matches!(too_large(&status), ClientError::MessageTooLarge { limit: 8, .. }));
    let request = warden_proto::v1::SetRequest {
        data: vec![0; MAX_CLIENT_MESSAGE_BYTES].into(),
        ..Default::default()
    };
    assert!(matches!(
        within_limit(&request),
        Err(ClientError::MessageTooLarge { limit: MAX_CLIENT_MESSAGE_BYTES, .. })
    ));
}
