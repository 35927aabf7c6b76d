"""A person applies in a real browser, staff approve in the admin, the member signs in."""

import datetime
import re
import time
from decimal import Decimal

import pytest
from allauth.mfa import app_settings as mfa_settings
from django.core import mail
from django.utils import timezone

from members.models import Member, Membership, MembershipApplication
from tests.accounts.helpers import last_login_code
from tests.factories import StaffUserFactory, current_totp_code, enable_totp

# The `hot_desk` fixture recreates the seeded plan, because a transactional test empties
# every table when it ends.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

STAFF_PASSWORD = "correct horse battery staple"  # set by UserFactory
APPLICATIONS_PATH = "/admin/members/membershipapplication/"
VIEWPORT = {"width": 1280, "height": 900}
FIELD_ORDER = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "plan",
    "desired_start_date",
    "referral_source",
    "message",
]
MIN_CONTRAST = 4.5  # WCAG 2.1 level AA for normal-size text

# Colour contrast of an element's text against the first opaque background behind it.
# Semi-transparent backgrounds are treated as opaque, which is exact for this site's CSS.
CONTRAST_SCRIPT = """
(selectors) => {
  const parse = (value) => {
    const parts = value.match(/rgba?\\(([^)]+)\\)/)[1].split(/[ ,\\/]+/).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour.a > 0) return colour;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const result = {};
  for (const selector of selectors) {
    const element = document.querySelector(selector);
    if (!element) { result[selector] = null; continue; }
    const text = luminance(parse(getComputedStyle(element).color));
    const behind = luminance(background(element));
    result[selector] = (Math.max(text, behind) + 0.05) / (Math.min(text, behind) + 0.05);
  }
  return result;
}
"""


def next_january_31() -> datetime.date:
    """Return the next 31 January from today (today included), always within 365 days."""
    today = timezone.localdate()
    this_year = datetime.date(today.year, 1, 31)
    return this_year if this_year >= today else datetime.date(today.year + 1, 1, 31)


def active_field(page) -> str:
    return page.evaluate("() => document.activeElement.name || document.activeElement.tagName")


def tab_to_next_field(page) -> str:
    """Press Tab until focus leaves the current control, and return the newly focused one.

    Chromium stops on the month, day and year parts of a date input and on its calendar
    button, so one control can take several presses.
    """
    current = active_field(page)
    for _ in range(6):
        page.keyboard.press("Tab")
        focused = active_field(page)
        if focused != current:
            return focused
    raise AssertionError(f"Tab never left {current}")


def visual_order(page) -> list[str]:
    """Return the form controls sorted top to bottom, then left to right, as laid out."""
    boxes = []
    for name in FIELD_ORDER:
        box = page.locator(f"[name={name}]").bounding_box()
        boxes.append((round(box["y"]), round(box["x"]), name))
    return [name for _y, _x, name in sorted(boxes)]


def totp_code_with_time_left(seconds: float = 3.0) -> str:
    """Return the current TOTP code, waiting for the next period when this one ends sooner
    than `seconds` from now: allauth accepts only the current period's code by default
    (MFA_TOTP_TOLERANCE = 0), and the browser submits it a moment later.
    """
    left = mfa_settings.TOTP_PERIOD - time.time() % mfa_settings.TOTP_PERIOD
    if left < seconds:
        time.sleep(left + 0.1)
    return current_totp_code()


def sign_in_staff(browser, live_server, next_path: str):
    """Sign a staff user with TOTP in from the admin's login URL, in a browser context of
    their own, and return the context and its page, which then shows `next_path`.

    The admin's login URL redirects to allauth's sign-in page, which prompts for the password
    and then for the current TOTP code.
    """
    staff_user = StaffUserFactory(username="rosa")
    enable_totp(staff_user)
    context = browser.new_context(locale="en-US", viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.locator("#id_login").fill(staff_user.email)
    page.locator("#id_password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/$"))
    page.locator("#id_code").fill(totp_code_with_time_left())
    page.get_by_role("button", name="Sign In", exact=True).click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))
    return context, page


def approve_in_admin(admin, application) -> str:
    """Run the bulk approve action on `application` and return the admin's messages."""
    admin.locator(f'input[name="_selected_action"][value="{application.pk}"]').check()
    admin.locator('select[name="action"]').select_option("approve_selected")
    admin.get_by_role("button", name="Run").click()
    admin.wait_for_load_state()
    return admin.locator("ul.messagelist").inner_text()


def test_apply_and_approve(browser, page, live_server, hot_desk):
    start = next_january_31()

    # The person finds the plan on the home page and opens its form.
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Apply for Hot Desk").click()
    page.wait_for_url(re.compile(r"/apply/\?plan=hot-desk$"))
    assert page.locator("#id_plan").input_value() == str(hot_desk.pk)
    assert visual_order(page) == FIELD_ORDER

    # They fill it in with the keyboard alone, starting from the first field.
    page.locator("#id_first_name").focus()
    page.keyboard.type("José")
    focus_order = ["first_name"]
    typed = {
        "last_name": "Núñez",
        "email": "jose.nunez@example.com",
        "phone": "787-555-0142",
        "company": "Cooperativa Tecnológica Ñandú",
        "plan": None,
        "desired_start_date": start.strftime("%m%d%Y"),
        "referral_source": "Web",
        "message": "Busco un escritorio tranquilo cerca del Condado.",
    }
    for keys in typed.values():
        focus_order.append(tab_to_next_field(page))
        if keys:
            page.keyboard.type(keys)
    focus_order.append(tab_to_next_field(page))

    assert focus_order == [*FIELD_ORDER, "BUTTON"], "Tab skipped or reordered a field"
    assert page.locator("#id_first_name").input_value() == "José"
    assert page.locator("#id_desired_start_date").input_value() == start.isoformat()
    assert page.locator("#id_referral_source").input_value() == "search"

    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/apply/thanks/$"))
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Thank you, we have your application"
    )
    thanks = page.locator("main").inner_text()
    assert "Thanks, José." in thanks
    assert "Hot Desk" in thanks
    assert "jose.nunez@example.com" in thanks

    application = MembershipApplication.objects.get()
    assert application.full_name == "José Núñez"
    assert application.company == "Cooperativa Tecnológica Ñandú"
    assert application.desired_start_date == start
    assert application.referral_source == "search"
    assert application.ip_address == "127.0.0.1"
    assert application.language == "en"

    # A staff member signs in, with their second factor, in a browser session of their own.
    staff, admin = sign_in_staff(browser, live_server, APPLICATIONS_PATH)
    assert "José Núñez" in admin.locator("#result_list").inner_text()

    # They select the application and run the bulk approve action.
    report = approve_in_admin(admin, application)
    staff.close()

    assert f"Application {application.pk} from José Núñez" in report
    assert "approved." in report

    member = Member.objects.get(email__iexact="jose.nunez@example.com")
    membership = Membership.objects.get(member=member)
    assert member.full_name == "José Núñez"
    assert membership.plan == hot_desk
    assert membership.state == Membership.State.PENDING
    assert membership.monthly_price == Decimal("250.00")
    assert membership.included_credit == Decimal("150.00")
    assert membership.contract_months == 12
    assert membership.start_date == start
    assert membership.commitment_end == datetime.date(start.year + 1, 1, 31)
    application.refresh_from_db()
    assert application.status == MembershipApplication.Status.APPROVED


def test_apply_approve_sign_in_with_code(browser, page, live_server, hot_desk):
    # The person applies on the public form.
    page.goto(f"{live_server.url}/apply/?plan=hot-desk")
    page.locator("#id_first_name").fill("Marisol")
    page.locator("#id_last_name").fill("Cruz Ayala")
    page.locator("#id_email").fill("Marisol.Cruz@example.com")
    page.get_by_role("button", name="Send application").click()
    page.wait_for_url(re.compile(r"/apply/thanks/$"))
    application = MembershipApplication.objects.get()

    # Staff approve the application in the admin.
    staff, admin = sign_in_staff(browser, live_server, APPLICATIONS_PATH)
    report = approve_in_admin(admin, application)
    staff.close()
    assert f"Application {application.pk} from Marisol Cruz Ayala" in report
    membership = Membership.objects.get(member__email__iexact="marisol.cruz@example.com")

    # The new member opens the portal and is sent to sign in.
    page.goto(f"{live_server.url}/portal/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/portal/$"))
    page.get_by_role("link", name="Email me a sign-in code").click()
    page.wait_for_url(re.compile(r"/accounts/login/code/"))
    page.locator("#id_email").fill("marisol.cruz@example.com")
    page.get_by_role("button", name="Request Code").click()
    page.wait_for_url(re.compile(r"/accounts/login/code/confirm/"))

    # The live server runs in this process, so its locmem outbox is this one; the
    # application emails are there too.
    codes = [message for message in mail.outbox if "Sign-In Code" in message.subject]
    assert [message.to for message in codes] == [["marisol.cruz@example.com"]]
    page.locator("#id_code").fill(last_login_code("marisol.cruz@example.com"))
    page.get_by_role("button", name="Confirm").click()

    # They land on their dashboard, which shows the plan and the state of the membership.
    page.wait_for_url(re.compile(r"/portal/$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Marisol"
    section = page.locator("#membership")
    assert membership.plan.name in section.locator(".membership-terms").inner_text()
    state = section.locator(".membership-state")
    assert f"state-{Membership.State.PENDING}" in state.get_attribute("class")
    assert "Pending" in state.locator(".state-label").inner_text()


@pytest.mark.parametrize("width", [390, 1280])
def test_apply_errors_layout(browser, live_server, hot_desk, tmp_path, width):
    context = browser.new_context(locale="en-US", viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/apply/?plan=hot-desk")
    page.locator("#id_first_name").fill("Zoë")
    page.locator("#id_last_name").fill("O'Brien-Ávila")
    page.locator("#id_email").fill("zoe@")
    page.locator("#id_phone").fill("call me")
    page.locator("#id_desired_start_date").fill("2020-01-15")
    page.get_by_role("button", name="Send application").click()
    page.wait_for_load_state()
    page.screenshot(path=tmp_path / f"apply-errors-{width}.png", full_page=True)

    summary = page.locator(".form-error-summary")
    assert summary.is_visible()
    assert page.evaluate("() => document.activeElement.id") == "error-summary"
    assert summary.locator("a").count() == 3
    assert page.locator("#id_first_name").input_value() == "Zoë"
    assert page.locator("#id_last_name").input_value() == "O'Brien-Ávila"
    assert page.locator("#id_email").get_attribute("aria-invalid") == "true"

    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
    for name in FIELD_ORDER:
        box = page.locator(f"[name={name}]").bounding_box()
        assert box["x"] >= 0, f"{name} starts off screen at {width}px"
        assert box["x"] + box["width"] <= width, f"{name} ends off screen at {width}px"
        assert box["height"] >= 24, f"{name} is too small to tap at {width}px"

    selectors = [
        "label[for=id_first_name]",
        "#id_email_error li",
        ".form-error-summary h2",
        ".form-error-summary a",
        ".helptext",
        ".required-note",
        ".lead",
        "button[type=submit]",
        ".brand",
        ".site-footer p",
        "#id_first_name",
    ]
    contrast = page.evaluate(CONTRAST_SCRIPT, selectors)
    context.close()

    for selector in selectors:
        assert contrast[selector] is not None, f"{selector} is not on the page"
        assert contrast[selector] >= MIN_CONTRAST, f"{selector}: {contrast[selector]:.2f}:1"


@pytest.mark.parametrize("width", [390, 1280])
def test_public_pages_fit_width(browser, live_server, hot_desk, tmp_path, width):
    context = browser.new_context(locale="en-US", viewport={"width": width, "height": 900})
    page = context.new_page()
    overflows = {}
    spills = {}
    for path in ("/", "/plans/hot-desk/", "/apply/thanks/"):
        page.goto(f"{live_server.url}{path}")
        page.screenshot(path=tmp_path / f"{path.strip('/').replace('/', '-') or 'home'}.png")
        overflows[path] = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        # Any element of a plan card that reaches past the card's right edge.
        spills[path] = page.evaluate(
            """() => [...document.querySelectorAll('.card')].flatMap((card) => {
                const edge = card.getBoundingClientRect().right;
                return [...card.querySelectorAll('*')]
                    .filter((node) => node.getBoundingClientRect().right > edge + 0.5)
                    .map((node) => node.textContent.trim());
            })"""
        )
    context.close()

    for path, overflow in overflows.items():
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
    for path, spilled in spills.items():
        assert spilled == [], f"{path}: text spills out of a plan card at {width}px"
